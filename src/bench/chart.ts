/**
 * The scaling curve of one bench (`bench --chart FILE`): each per-instance figure against the fleet size, as
 * a multiple of its value at the smallest size, on a logarithmic size axis. A flat line is what issue 15 asks
 * for: the orchestration costs the same per instance whatever the fleet. Plain SVG, no dependency; GitHub
 * renders it in docs/performance.md.
 */
import type { BenchResult } from './run.ts';

const SERIES: { key: keyof BenchResult['perInstance']; label: string; color: string }[] = [
  { key: 'apiCalls', label: 'API calls', color: '#1f77b4' },
  { key: 'gbSeconds', label: 'Lambda GB-s', color: '#ff7f0e' },
  { key: 's3Bytes', label: 'S3 bytes', color: '#2ca02c' },
  { key: 'stateTransitions', label: 'state transitions', color: '#d62728' },
];

const W = 720;
const H = 360;
const M = { left: 70, right: 180, top: 40, bottom: 50 };

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** The SVG text of the chart; needs at least two fleet sizes. */
export function scalingChartSvg(results: readonly BenchResult[], title = 'Per-instance cost against fleet size'): string {
  const sorted = [...results].sort((a, b) => a.instances - b.instances);
  const first = sorted[0];
  const last = sorted.at(-1);
  if (!first || !last || sorted.length < 2 || first.instances === last.instances) throw new Error('A scaling chart needs results for at least two fleet sizes.');
  const ratios = SERIES.map((s) => sorted.map((r) => (first.perInstance[s.key] > 0 ? r.perInstance[s.key] / first.perInstance[s.key] : 1)));
  const top = Math.max(2, Math.ceil(Math.max(...ratios.flat()) * 2) / 2);
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const lx0 = Math.log10(first.instances);
  const lx1 = Math.log10(last.instances);
  const x = (n: number) => M.left + ((Math.log10(n) - lx0) / (lx1 - lx0)) * plotW;
  const y = (ratio: number) => M.top + plotH - (ratio / top) * plotH;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  parts.push(`<text x="${M.left}" y="22" font-size="14" font-weight="bold">${esc(title)}</text>`);
  // Horizontal grid: multiples of the smallest size's figure.
  for (let r = 0; r <= top + 1e-9; r += 0.5) {
    parts.push(`<line x1="${M.left}" x2="${M.left + plotW}" y1="${y(r).toFixed(1)}" y2="${y(r).toFixed(1)}" stroke="${r === 1 ? '#888' : '#e5e5e5'}"${r === 1 ? ' stroke-dasharray="4 3"' : ''}/>`);
    parts.push(`<text x="${M.left - 8}" y="${(y(r) + 4).toFixed(1)}" text-anchor="end">${r.toFixed(1)}×</text>`);
  }
  // The 1.3× limit of issue 15.
  if (top >= 1.3) parts.push(`<line x1="${M.left}" x2="${M.left + plotW}" y1="${y(1.3).toFixed(1)}" y2="${y(1.3).toFixed(1)}" stroke="#c00" stroke-dasharray="2 4"/><text x="${M.left + plotW - 4}" y="${(y(1.3) - 4).toFixed(1)}" text-anchor="end" fill="#c00">limit 1.3×</text>`);
  for (const r of sorted) {
    parts.push(`<line x1="${x(r.instances).toFixed(1)}" x2="${x(r.instances).toFixed(1)}" y1="${M.top}" y2="${M.top + plotH}" stroke="#f0f0f0"/>`);
    parts.push(`<text x="${x(r.instances).toFixed(1)}" y="${M.top + plotH + 18}" text-anchor="middle">${r.instances.toLocaleString('en-US')}</text>`);
  }
  parts.push(`<text x="${M.left + plotW / 2}" y="${H - 10}" text-anchor="middle">instances (log scale)</text>`);
  parts.push(`<text x="16" y="${M.top + plotH / 2}" text-anchor="middle" transform="rotate(-90 16 ${M.top + plotH / 2})">per instance, × the smallest fleet</text>`);
  SERIES.forEach((s, i) => {
    const points = sorted.map((r, k) => `${x(r.instances).toFixed(1)},${y(ratios[i]?.[k] ?? 1).toFixed(1)}`).join(' ');
    parts.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${points}"><title>${esc(s.label)}</title></polyline>`);
    for (const p of points.split(' ')) {
      const [px, py] = p.split(',');
      parts.push(`<circle cx="${px}" cy="${py}" r="3" fill="${s.color}"/>`);
    }
    const ly = M.top + 10 + i * 20;
    const lastRatio = ratios[i]?.at(-1) ?? 1;
    parts.push(`<line x1="${W - M.right + 16}" x2="${W - M.right + 36}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2"/><text x="${W - M.right + 42}" y="${ly + 4}">${esc(s.label)} ${lastRatio.toFixed(2)}×</text>`);
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
