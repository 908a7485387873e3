/** How `vss-snapshots bench` shows its figures: a block per run, and a Markdown table across runs. */
import type { BenchResult } from './run.ts';
import { PRICES } from './prices.ts';

const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const usd = (n: number): string => `$${n < 0.01 ? n.toFixed(4) : n.toFixed(3)}`;
const mb = (bytes: number): string => `${(bytes / 1e6).toFixed(bytes < 1e6 ? 2 : 1)} MB`;
const minutes = (s: number): string => `${(s / 60).toFixed(1)} min`;

export function formatBench(r: BenchResult): string {
  const lines: string[] = [];
  const push = (label: string, text: string) => lines.push(`  ${label.padEnd(18)} ${text}`);
  lines.push(
    `vss-snapshots bench: ${int(r.instances)} instances × ${r.volumes} volume(s), fail rate ${r.failRate}, commands ${r.commandSeconds} s, snapshots ${r.snapshotMinutes} min, pressure ${r.pressure ? 'on' : 'off'}`,
  );
  if (r.status !== 'SUCCEEDED') push('WORKFLOW FAILED', r.error ?? 'unknown error');
  const a = r.apiCalls;
  push('API calls', `${int(a.total)} total (${a.perInstance}/instance); floor ${int(a.floor)} (${a.floorPerInstance}/instance); ratio ${a.ratio}`);
  const width = Math.max(...Object.keys(a.floors).map((k) => k.length));
  for (const op of Object.keys(a.floors)) {
    const ratio = a.ratios[op];
    lines.push(`      ${op.padEnd(width)} ${int(a.byOperation[op] ?? 0).padStart(7)}   floor ${int(a.floors[op] ?? 0).padStart(6)}   ${ratio === null || ratio === undefined ? '(overhead)' : `×${ratio.toFixed(2)}`}`);
  }
  if (r.pressure) {
    const throttled = Object.entries(r.pressure.throttled).map(([op, n]) => `${op} ${int(n)}`);
    push('throttled', throttled.length > 0 ? `${throttled.join(', ')} (answered RequestLimitExceeded/ThrottlingException; retried by the SDK, counted above)` : 'none');
    const i = r.pressure.instanceCreateSnapshots;
    push('instance calls', `ec2:CreateSnapshots by the VSS agents: ${int(i.calls)}, ${int(i.delayed)} waited for a token (longest ${(i.maxWaitMs / 1000).toFixed(1)} s), ${int(i.failed)} throttled past the VSS freeze`);
    push('API latency', `${int(r.pressure.latencySeconds)} s of simulated call latency in total`);
  }
  push('state transitions', `${int(r.stateTransitions)} (${r.stateTransitionsPerInstance}/instance), as Standard workflows bill them (retries included)`);
  push('history events', `${int(r.maxHistoryEvents)} in the largest execution (${r.executions} execution; limit 25,000)`);
  push('largest payload', `${int(r.maxPayloadBytes)} bytes of state input/output (limit 262,144)`);
  const l = r.lambda;
  push(
    'Lambda',
    `${int(l.invocations)} invocations, ${l.gbSeconds} GB-s (${l.memoryMb} MB ${l.architecture}, from ${l.settingsFrom}); longest ${l.maxInvocationSeconds} s in "${l.maxInvocationState}" (timeout ${l.timeoutSeconds} s)`,
  );
  const s = r.runState;
  push('run-state object', `${mb(s.bytes)} (${int(s.bytesPerInstance)} B/instance), ${int(s.s3Gets)} GETs + ${int(s.s3Puts)} PUTs; S3 traffic ${s.mbRead} MB read, ${s.mbWritten} MB written; report ${mb(s.reportBytes)}`);
  push('simulated time', `${int(r.simulatedSeconds)} s (${minutes(r.simulatedSeconds)}); forced by the CreateSnapshots rate: ${int(r.rateForcedSeconds)} s`);
  push('wall time', `${r.wallSeconds} s`);
  const c = r.cost;
  push(
    'cost',
    `${usd(r.costUsd)} = Step Functions ${usd(c.stepFunctions)} + Lambda ${usd(c.lambdaCompute)} compute + ${usd(c.lambdaRequests)} requests + S3 ${usd(c.s3Requests)} + SNS ${usd(c.sns)} (list prices ${PRICES.region}, ${PRICES.asOf}; EC2/SSM calls free)`,
  );
  push('summary', `${int(r.summary.targeted)} targeted: ${int(r.summary.succeeded)} succeeded, ${int(r.summary.failed)} failed, ${int(r.summary.skipped)} skipped`);
  if (r.alert) push('alert', `"${r.alert.subject}": names ${r.alert.namedInstances}${r.alert.more !== null ? `, "and ${int(r.alert.more)} more"` : ''} (${int(r.alert.bytes)} bytes)`);
  push('targets', '');
  for (const t of r.targets) lines.push(`      ${t.met ? '✓' : '✗'} ${t.name}: ${t.value} (limit ${t.limit})`);
  return `${lines.join('\n')}\n`;
}

export function markdownTable(results: BenchResult[]): string {
  const header = [
    'N',
    'fail rate',
    'API calls (per inst.)',
    'floor',
    'ratio',
    'throttled',
    'transitions (per inst.)',
    'history events',
    'max payload B',
    'Lambda inv.',
    'GB-s',
    'state object',
    'state GET+PUT',
    'simulated',
    'wall s',
    'cost USD',
    'succeeded / failed',
  ];
  const rows = results.map((r) => [
    int(r.instances),
    String(r.failRate),
    `${int(r.apiCalls.total)} (${r.apiCalls.perInstance})`,
    int(r.apiCalls.floor),
    r.apiCalls.ratio.toFixed(2),
    int(Object.values(r.pressure?.throttled ?? {}).reduce((a, b) => a + b, 0)),
    `${int(r.stateTransitions)} (${r.stateTransitionsPerInstance})`,
    int(r.maxHistoryEvents),
    int(r.maxPayloadBytes),
    int(r.lambda.invocations),
    String(r.lambda.gbSeconds),
    mb(r.runState.bytes),
    `${int(r.runState.s3Gets)}+${int(r.runState.s3Puts)}`,
    minutes(r.simulatedSeconds),
    r.wallSeconds.toFixed(1),
    r.costUsd.toFixed(4),
    `${int(r.summary.succeeded)} / ${int(r.summary.failed)}`,
  ]);
  return [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((row) => `| ${row.join(' | ')} |`)].join('\n') + '\n';
}
