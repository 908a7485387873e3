/**
 * Seeded randomness for the simulated account: the same fleet file always gives the same faults, lags and
 * outputs, so every run, test and benchmark is reproducible from its inputs alone.
 */

/** mulberry32: a tiny seeded PRNG, plenty for picking faults and lags reproducibly. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** A seed for one purpose derived from a base seed, so adding draws for one purpose never shifts another's. */
export function streamSeed(seed: number, purpose: string): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  for (let i = 0; i < purpose.length; i += 1) h = Math.imul(h ^ purpose.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}
