/**
 * A small bar chart of one number per night, in plain ASCII (no colour, no cursor movement): it reads the same
 * on a terminal, in a pipe, in a CI log and in an e-mail. More nights than `width` columns are folded, each
 * column showing the last night it covers.
 */
export interface ChartOptions {
  title: string;
  /** Rows of bars (default 8). */
  height?: number;
  /** Most columns (default 60). */
  width?: number;
}

export function nightChart(values: number[], options: ChartOptions): string {
  const height = options.height ?? 8;
  const width = options.width ?? 60;
  if (values.length === 0) return `${options.title}\n(no nights)\n`;
  const perColumn = Math.ceil(values.length / width);
  const columns: { night: number; value: number }[] = [];
  for (let end = perColumn; end - perColumn < values.length; end += perColumn) {
    const last = Math.min(end, values.length);
    columns.push({ night: last, value: values[last - 1] as number });
  }
  const max = Math.max(...columns.map((c) => c.value));
  const labelWidth = Math.max(String(max).length, 1);
  const filled = columns.map((c) => (max === 0 ? 0 : c.value === 0 ? 0 : Math.max(1, Math.round((c.value / max) * height))));
  const lines = [options.title];
  for (let row = height; row >= 1; row -= 1) {
    // Labels at the top (the maximum) and half-way; the axis line carries 0.
    const label = row === height ? String(max) : row === Math.ceil(height / 2) && max > 1 ? String(Math.round((max * row) / height)) : '';
    lines.push(`${label.padStart(labelWidth)} |${filled.map((f) => (f >= row ? '#' : ' ')).join('')}`.trimEnd());
  }
  lines.push(`${'0'.padStart(labelWidth)} +${'-'.repeat(columns.length)}`);
  // Night numbers under the axis: the first column, then every tenth column where the label fits.
  let axis = ' '.repeat(labelWidth + 2);
  for (const [i, c] of columns.entries()) {
    if (i !== 0 && i % 10 !== 9 && i !== columns.length - 1) continue;
    const at = labelWidth + 2 + i;
    if (i > 0 && axis.length >= at) continue;
    axis = axis.padEnd(at) + String(c.night);
  }
  lines.push(axis);
  lines.push(`${' '.repeat(labelWidth + 2)}night${perColumn > 1 ? ` (one column per ${perColumn} nights, the last of each)` : ''}`);
  return `${lines.join('\n')}\n`;
}
