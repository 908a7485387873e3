/** EC2 `Filters` value matching, shared by the simulated EC2 operations (its own module: no import cycle). */

/** EC2 filter value matching: `*` and `?` are wildcards, a backslash escapes them. */
export function filterValueMatches(pattern: string, value: string): boolean {
  // Hot path at scale (every snapshot of a 10,000-instance run, every page): plain values compare as strings.
  if (!/[*?\\]/.test(pattern)) return pattern === value;
  let compiled = compiledPatterns.get(pattern);
  if (!compiled) {
    compiled = compilePattern(pattern);
    if (compiledPatterns.size > 10_000) compiledPatterns.clear();
    compiledPatterns.set(pattern, compiled);
  }
  return compiled.test(value);
}
const compiledPatterns = new Map<string, RegExp>();

function compilePattern(pattern: string): RegExp {
  let regex = '';
  for (let i = 0; i < pattern.length; i += 1) {
    const ch = pattern[i] as string;
    if (ch === '\\' && i + 1 < pattern.length) {
      regex += escapeRegex(pattern[i + 1] as string);
      i += 1;
    } else if (ch === '*') regex += '.*';
    else if (ch === '?') regex += '.';
    else regex += escapeRegex(ch);
  }
  return new RegExp(`^${regex}$`, 's');
}
const escapeRegex = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
