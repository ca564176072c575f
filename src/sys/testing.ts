/**
 * Reading Prometheus text format in tests: the value of one sample, found by name and labels,
 * as a scrape would show it. Not part of the build (see tsconfig.build.json).
 */

/** Every sample line: name, labels, value (`+Inf` and `NaN` as numbers). */
export function samples(
  text: string,
): { name: string; labels: Record<string, string>; value: number }[] {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[3].replace(/^\+Inf$/, 'Infinity')) });
  }
  return out;
}

/**
 * The value of the sample named `name` whose labels include `labels`; undefined when there is
 * none. Several matches are an error: the test meant one series.
 */
export function sample(
  text: string,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const found = samples(text).filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} match`);
  return found[0]?.value;
}
