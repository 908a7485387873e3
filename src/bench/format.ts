/** How `vss-snapshots bench` shows its figures: a block per run, and a Markdown table across runs. */
import type { BenchResult, scaling } from './run.ts';
import { PRICES } from './prices.ts';

const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const usd = (n: number): string => `$${n < 0.01 ? n.toFixed(4) : n.toFixed(3)}`;
const mb = (bytes: number): string => `${(bytes / 1e6).toFixed(bytes < 1e6 ? 2 : 1)} MB`;
const minutes = (s: number): string => `${(s / 60).toFixed(1)} min`;

export function formatBench(r: BenchResult): string {
  const lines: string[] = [];
  const push = (label: string, text: string) => lines.push(`  ${label.padEnd(18)} ${text}`);
  lines.push(
    `vss-snapshots bench: ${int(r.instances)} instances × ${r.volumes} volume(s), fail rate ${r.failRate}, hang rate ${r.hangRate}, commands ${r.commandSeconds} s, snapshots ${r.snapshotMinutes} min, pressure ${r.pressure ? 'on' : 'off'}`,
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
  if (r.dr) {
    const d = r.dr;
    const until = d.secondsUntilAllProtected === null ? `not all within the pass (${int(d.unfinished)} carried over to the next night)` : `${hours(d.secondsUntilAllProtected)} after the run's start`;
    push('DR copies', `${int(d.completed)} of ${int(d.snapshots)} copied into ${d.region} (${int(d.fullCopies)} full, ${int(d.incrementalCopies)} incremental, ${int(d.gibTransferred)} GiB), ${int(d.protectedSets)} of ${int(d.sets)} sets protected, ${int(d.failed)} failed; every set protected: ${until}`);
    push('DR pass', `${int(d.concurrency)} in flight at most, ${int(d.copiesPerHour)} copies/hour; ${int(d.transitions)} state transitions, ${int(d.advanceInvocations)} turns; DR-Region calls ${Object.entries(d.drRegionCalls).map(([op, n]) => `${op} ${int(n)}`).join(', ')}`);
  } else if (r.dr === null) push('DR copies', 'no DR record (the pass did not run)');
  push('state transitions', `${int(r.stateTransitions)} (${r.stateTransitionsPerInstance}/instance), as Standard workflows bill them (retries included)`);
  push('history events', `${int(r.maxHistoryEvents)} in the largest execution (of ${int(r.executions)}: the run and one per shard; limit 25,000)`);
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
  const p = r.perInstance;
  push('per instance', `${p.apiCalls} API calls, ${p.gbSeconds} GB-s, ${int(p.s3Bytes)} S3 bytes, ${p.stateTransitions} transitions`);
  const lat = r.latency;
  push('latency', lat.healthyInstances > 0 ? `healthy instances (${int(lat.healthyInstances)}) final after p50 ${minutes(lat.healthyP50Seconds ?? 0)}, p99 ${minutes(lat.healthyP99Seconds ?? 0)} from the start` : 'no healthy instance');
  if (r.retry.retried + r.retry.retriedAfterSnapshotCheck > 0) {
    const recorded = r.retry.maxSecondsUntilRecorded ?? 0;
    const lost = recorded > (r.retry.maxSecondsAfterFailure ?? 0) + 1 ? `; in SSM at most ${int(recorded)} s after (a send whose answer was lost waits the confirm window)` : '';
    const checked = r.retry.retriedAfterSnapshotCheck > 0 ? `; ${int(r.retry.retriedAfterSnapshotCheck)} more after a snapshot check failed` : '';
    push('retries', `${int(r.retry.retried)} after a failed command, at most ${int(r.retry.maxSecondsAfterFailure ?? 0)} s after it failed (limit ${int(r.retry.limitSeconds)} s)${lost}${checked}`);
  }
  const c = r.cost;
  push(
    'cost',
    `${usd(r.costUsd)} (${usd(r.costPer10kUsd)} per 10,000 instances) = Step Functions ${usd(c.stepFunctions)} + Lambda ${usd(c.lambdaCompute)} compute + ${usd(c.lambdaRequests)} requests + S3 ${usd(c.s3Requests)} + SNS ${usd(c.sns)} (list prices ${PRICES.region}, ${PRICES.asOf}; EC2/SSM calls free)`,
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
    'fail / hang rate',
    'API calls (per inst.)',
    'floor',
    'ratio',
    'throttled',
    'transitions (per inst.)',
    'executions',
    'history events (max)',
    'max payload B',
    'Lambda inv.',
    'GB-s (per inst.)',
    'largest state object',
    'S3 B per inst.',
    'healthy p50 / p99',
    'simulated',
    'wall s',
    'cost USD (per 10k)',
    'succeeded / failed',
  ];
  const rows = results.map((r) => [
    int(r.instances),
    `${r.failRate} / ${r.hangRate}`,
    `${int(r.apiCalls.total)} (${r.apiCalls.perInstance})`,
    int(r.apiCalls.floor),
    r.apiCalls.ratio.toFixed(2),
    int(Object.values(r.pressure?.throttled ?? {}).reduce((a, b) => a + b, 0)),
    `${int(r.stateTransitions)} (${r.stateTransitionsPerInstance})`,
    int(r.executions),
    int(r.maxHistoryEvents),
    int(r.maxPayloadBytes),
    int(r.lambda.invocations),
    `${r.lambda.gbSeconds} (${r.perInstance.gbSeconds})`,
    mb(r.runState.bytes),
    int(r.perInstance.s3Bytes),
    r.latency.healthyP50Seconds === null ? '—' : `${minutes(r.latency.healthyP50Seconds)} / ${minutes(r.latency.healthyP99Seconds ?? 0)}`,
    minutes(r.simulatedSeconds),
    r.wallSeconds.toFixed(1),
    `${r.costUsd.toFixed(4)} (${r.costPer10kUsd.toFixed(4)})`,
    `${int(r.summary.succeeded)} / ${int(r.summary.failed)}`,
  ]);
  return [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((row) => `| ${row.join(' | ')} |`)].join('\n') + '\n';
}

/** How each per-instance figure changed across the sizes of one bench (issue 15's 1.3× target). */
export function formatScaling(s: NonNullable<ReturnType<typeof scaling>>): string {
  const lines = [`Per instance, ${int(s.from)} → ${int(s.to)} instances (largest ÷ smallest across the sizes):`];
  for (const t of s.targets) lines.push(`  ${t.met ? '✓' : '✗'} ${t.name}: ${t.value}`);
  return `${lines.join('\n')}\n`;
}

function hours(seconds: number): string {
  return `${Math.floor(seconds / 3600)} h ${String(Math.round((seconds % 3600) / 60)).padStart(2, '0')} min`;
}
