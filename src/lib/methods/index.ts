import type { SnapshotMethod } from '../config.ts';
import { awsVss } from './aws-vss.ts';
import { diskShadow } from './diskshadow.ts';
import type { MethodDriver } from './types.ts';

const DRIVERS: Record<SnapshotMethod, MethodDriver> = { 'aws-vss': awsVss, diskshadow: diskShadow };

export function methodDriver(method: SnapshotMethod): MethodDriver {
  return DRIVERS[method];
}
