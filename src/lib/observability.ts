/**
 * Powertools logger and metrics, created once per container. The metrics (namespace `VssSnapshots`) feed
 * the stack's dashboard and alarms.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';

export const logger = new Logger({ serviceName: 'vss-snapshots' });
export const metrics = new Metrics({ namespace: 'VssSnapshots', serviceName: 'vss-snapshots' });
export { MetricUnit };
