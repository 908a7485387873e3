import { describe, expect, it } from 'vitest';
import { scalingChartSvg } from '../../src/bench/chart.ts';
import type { BenchResult } from '../../src/bench/run.ts';

const result = (instances: number, perInstance: BenchResult['perInstance']) => ({ instances, perInstance }) as BenchResult;

describe('the scaling chart of `bench --chart`', () => {
  const svg = scalingChartSvg([
    result(100_000, { apiCalls: 0.15, gbSeconds: 0.0076, s3Bytes: 21_000, stateTransitions: 0.066 }),
    result(1_000, { apiCalls: 0.15, gbSeconds: 0.007, s3Bytes: 16_800, stateTransitions: 0.055 }),
    result(10_000, { apiCalls: 0.3, gbSeconds: 0.007, s3Bytes: 18_500, stateTransitions: 0.054 }),
  ]);

  it('draws each per-instance figure as a multiple of its value at the smallest fleet, sizes left to right', () => {
    const lines = [...svg.matchAll(/<polyline [^>]*points="([^"]+)"><title>([^<]+)<\/title>/g)].map((m) => ({ label: m[2], points: (m[1] ?? '').split(' ').map((p) => p.split(',').map(Number)) }));
    expect(lines.map((l) => l.label)).toEqual(['API calls', 'Lambda GB-s', 'S3 bytes', 'state transitions']);
    for (const l of lines) expect(l.points.map(([x]) => x)).toEqual([...l.points.map(([x]) => x)].sort((a, b) => (a ?? 0) - (b ?? 0)));
    // API calls: 1× at 1,000, 2× at 10,000, 1× at 100,000 — the middle point is highest on the page (smallest y).
    const api = lines[0]?.points ?? [];
    expect(api[1]?.[1]).toBeLessThan(api[0]?.[1] ?? 0);
    expect(api[2]?.[1]).toBeCloseTo(api[0]?.[1] ?? 0, 5);
    expect(svg).toContain('API calls 1.00×');
    expect(svg).toContain('S3 bytes 1.25×');
    expect(svg).toContain('limit 1.3×');
  });

  it('needs two fleet sizes', () => {
    expect(() => scalingChartSvg([result(1_000, { apiCalls: 1, gbSeconds: 1, s3Bytes: 1, stateTransitions: 1 })])).toThrow(/two fleet sizes/);
  });
});
