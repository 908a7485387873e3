import { clients } from '../lib/clients.ts';
import { loadConfig } from '../lib/config.ts';
import { finishRun } from '../lib/finish-run.ts';
import { metrics, MetricUnit } from '../lib/observability.ts';
import { parseRunContext } from '../lib/run-context.ts';
import { loadWholeRun } from '../lib/run-state.ts';

/** State "Finish Run": report, alert, and the run's metrics for the dashboard. */
export const handler = async (event: unknown) => {
  const context = parseRunContext(event);
  const config = loadConfig();
  // The run object with every shard's instances: the report covers them all.
  const state = await loadWholeRun(clients.s3, config.reportBucket, context.runId);
  const result = await finishRun({ s3: clients.s3, sns: clients.sns, config }, state);
  metrics.addMetric('Runs', MetricUnit.Count, 1);
  metrics.addMetric('InstancesSucceeded', MetricUnit.Count, result.summary.succeeded);
  metrics.addMetric('InstancesFailed', MetricUnit.Count, result.summary.failed);
  metrics.addMetric('InstancesSkipped', MetricUnit.Count, result.summary.skipped);
  metrics.addMetric('SnapshotsCreated', MetricUnit.Count, result.summary.snapshots);
  metrics.addMetric('RunDurationSeconds', MetricUnit.Seconds, Math.max(0, (Date.parse(state.finishedAt ?? state.startedAt) - Date.parse(state.startedAt)) / 1000));
  metrics.publishStoredMetrics();
  return result;
};
