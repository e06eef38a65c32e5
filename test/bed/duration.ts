/** Go-style durations (`96h`, `1h30m`, `45s`, `4d`) used by scenario files. */

const UNITS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };

/**
 * Parses a duration such as `96h`, `1h30m`, `90s` or `4d` into seconds.
 * @throws Error naming the input when it is not a duration.
 */
export function parseDuration(text: string): number {
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;
  let total = 0;
  let matched = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    total += Number(m[1]) * (UNITS[m[2] as string] as number);
    matched = re.lastIndex;
  }
  if (text.length === 0 || matched !== text.length) {
    throw new Error(`not a duration: '${text}' (use e.g. 96h, 1h30m, 45s, 4d)`);
  }
  return total;
}
