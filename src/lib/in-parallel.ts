/**
 * Runs `work` over `items` with at most `limit` at a time, results in the order of `items`. For the listings
 * and shard reads whose count grows with the fleet (2,000 DescribeInstanceInformation pages for 100,000
 * instances): one after the other they would take minutes of a Lambda's 15. The first error rejects the whole
 * (the others still finish); the SDK's own retries handle throttling of each call.
 */
export async function inParallel<T, R>(items: readonly T[], limit: number, work: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next;
      next += 1;
      results[index] = await work(items[index] as T, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, limit), items.length) }, worker));
  return results;
}
