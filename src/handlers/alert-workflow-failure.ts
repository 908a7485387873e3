import { clients } from '../lib/clients.ts';
import { loadConfig } from '../lib/config.ts';
import { metrics, MetricUnit } from '../lib/observability.ts';
import { alertWorkflowFailure } from '../lib/workflow-failure.ts';

/** State "Alert Workflow Failure": the Catch of every step. */
export const handler = async (event: unknown) => {
  const result = await alertWorkflowFailure({ s3: clients.s3, sns: clients.sns, config: loadConfig() }, event);
  metrics.addMetric('WorkflowFailures', MetricUnit.Count, 1);
  metrics.publishStoredMetrics();
  return result;
};
