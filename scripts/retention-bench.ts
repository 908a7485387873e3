/**
 * Retention at scale, steady state: N instances with V volumes each already hold `history` nights of verified
 * sets (seeded straight into the simulated account, tagged as the workflow tags them), then one nightly run with
 * EC2's rate limits on and `RETAIN_COUNT=history` — so exactly one set per instance expires tonight. Prints what
 * the retention steps cost: invocations, billed seconds, API calls, how long they add to the night, throttling.
 *
 *   npx tsx scripts/retention-bench.ts [instances=10000] [volumes=2] [history=7] [maxDeletes=20000]
 */
import { parseFleet } from '../src/local/fleet.ts';
import { accountLimits } from '../src/local/limits.ts';
import { REPORT_BUCKET, runWorkflow } from '../src/local/runner.ts';
import { worldFromFleet } from '../src/local/world.ts';
import { ATTEMPT_TAG, METHOD_TAG, RUN_TAG, STACK_TAG } from '../src/lib/run-id.ts';
import { retentionKey } from '../src/lib/retention/record.ts';
import { reportKey } from '../src/lib/run-state.ts';
import type { RunReport } from '../src/lib/report.ts';

const [instances = 10_000, volumes = 2, history = 7, maxDeletes = 20_000] = process.argv.slice(2).map(Number);
const DAY = 86_400_000;
const devices = ['/dev/sda1', ...Array.from({ length: volumes - 1 }, (_, k) => `xvd${String.fromCharCode(102 + k)}`)];
const fleet = parseFleet({ faults: { rate: 0 }, instances: Array.from({ length: instances }, () => ({ volumes: devices.map((device) => ({ device, sizeGiB: 30 })) })) }, 'retention bench');
const world = worldFromFleet(fleet);
const wallStart = performance.now();
for (let night = history; night >= 1; night -= 1) {
  const start = world.now - night * DAY + 60_000;
  const runId = `${new Date(start - 60_000).toISOString().replace(/[-:]/g, '').replace(/\.[0-9]+Z$/, 'Z')}-${night.toString(16).padStart(8, '0')}`;
  for (const instance of world.instances.values()) {
    for (const volume of world.volumesOf(instance.instanceId)) {
      world.addSnapshot({
        snapshotId: `snap-0${world.nextHex(16)}`,
        volumeId: volume.volumeId,
        instanceId: instance.instanceId,
        volumeSize: volume.sizeGiB,
        startTime: start,
        completeAt: start + 600_000,
        finalState: 'completed',
        visibleAt: start,
        description: `vss-snapshots run ${runId} attempt 1`,
        tags: { [RUN_TAG]: runId, [ATTEMPT_TAG]: '1', [METHOD_TAG]: 'aws-vss', [STACK_TAG]: 'vss-snapshots-local', AppConsistent: 'true', Device: volume.device ?? '' },
        deleted: false,
      });
    }
  }
}
const seeded = world.snapshots.size;
const limits = accountLimits(world);
let retentionStart = 0;
let retentionEnd = 0;
const before: Record<string, number> = {};
const result = await runWorkflow(world, {
  env: { RETAIN_COUNT: String(history), RETAIN_DAYS: '0', RETENTION_MAX_DELETES: String(maxDeletes) },
  interceptors: [limits.interceptor],
  onEvent: (event, w) => {
    if (!('state' in event)) return;
    if (event.type === 'StateEntered' && event.state.name === 'Plan Retention' && retentionStart === 0) {
      retentionStart = w.now;
      Object.assign(before, w.apiCalls);
    }
    // The report and the alert: after Plan Retention, before the deletions.
    if (event.type === 'StateEntered' && event.state.name === 'Finish Run') retentionEnd = w.now;
    if (event.type === 'StateExited' && event.state.name === 'Apply Retention') retentionEnd = w.now;
  },
});
limits.uninstall();
const report = JSON.parse(world.buckets.get(REPORT_BUCKET)?.get(reportKey((result.output as { runId: string }).runId)) ?? '{}') as RunReport;
const recordBytes = (world.buckets.get(REPORT_BUCKET)?.get(retentionKey(report.runId)) ?? '').length;
const calls = Object.fromEntries(Object.entries(world.apiCalls).map(([k, v]) => [k, v - (before[k] ?? 0)]).filter(([, v]) => (v as number) > 0));
const state = (name: string) => result.stats.byState[name] ?? { invocations: 0, billedMs: 0, maxMs: 0 };
console.log(
  JSON.stringify(
    {
      instances,
      volumes,
      history,
      seededSnapshots: seeded,
      status: result.status,
      summary: report.summary,
      retention: { mode: report.retention?.mode, kept: report.retention?.kept, deleted: report.retention?.deleted.length, deferred: report.retention?.deferred, anomalies: report.retention?.anomalies },
      retentionMinutes: Math.round((retentionEnd - retentionStart) / 6000) / 10,
      planRetention: { invocations: state('Plan Retention').invocations, billedSeconds: Math.round(state('Plan Retention').billedMs / 100) / 10 },
      applyRetention: { invocations: state('Apply Retention').invocations, billedSeconds: Math.round(state('Apply Retention').billedMs / 100) / 10, maxSeconds: Math.round(state('Apply Retention').maxMs / 100) / 10 },
      apiCallsDuringRetention: calls,
      throttledDeleteSnapshot: limits.stats.throttled['ec2:DeleteSnapshot'] ?? 0,
      retentionRecordMB: Math.round(recordBytes / 1e5) / 10,
      stateTransitions: result.stats.stateTransitions,
      maxHistoryEvents: result.stats.historyEvents,
      wallSeconds: Math.round((performance.now() - wallStart) / 100) / 10,
    },
    null,
    2,
  ),
);
