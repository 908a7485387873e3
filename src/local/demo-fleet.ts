/**
 * The fleet `npm start` runs against: a small Windows estate as a newcomer would picture it. Healthy
 * servers with one to three volumes, one whose first VSS attempt times out and whose retry succeeds, a
 * tagged Linux box and a stopped server (both skipped), and an untagged server (not selected at all).
 */
import type { Fleet } from './fleet.ts';

export const DEMO_FLEET: Fleet = {
  instances: [
    { instanceId: 'i-0a1b2c3d4e5f60001', name: 'sql-prod-01', platform: 'windows', state: 'running', agent: 'online', attempts: ['ok'], commandSeconds: 45, snapshotMinutes: 6,
      volumes: [{ device: '/dev/sda1', sizeGiB: 80 }, { device: 'xvdf', sizeGiB: 500 }, { device: 'xvdg', sizeGiB: 200 }] },
    { instanceId: 'i-0a1b2c3d4e5f60002', name: 'exchange-01', platform: 'windows', state: 'running', agent: 'online', attempts: ['ok'], commandSeconds: 40, snapshotMinutes: 4,
      volumes: [{ device: '/dev/sda1', sizeGiB: 100 }, { device: 'xvdf', sizeGiB: 1000 }] },
    { instanceId: 'i-0a1b2c3d4e5f60003', name: 'fileserver-01', platform: 'windows', state: 'running', agent: 'online', attempts: ['vss-timeout', 'ok'], commandSeconds: 60, snapshotMinutes: 8,
      volumes: [{ device: '/dev/sda1', sizeGiB: 60 }, { device: 'xvdf', sizeGiB: 2000 }] },
    { instanceId: 'i-0a1b2c3d4e5f60004', name: 'dc-01', platform: 'windows', state: 'running', agent: 'online', attempts: ['ok'], commandSeconds: 25, snapshotMinutes: 2,
      volumes: [{ device: '/dev/sda1', sizeGiB: 50 }] },
    { instanceId: 'i-0a1b2c3d4e5f60005', name: 'app-01', platform: 'windows', state: 'running', agent: 'online', attempts: ['ok'], commandSeconds: 30, snapshotMinutes: 3,
      volumes: [{ device: '/dev/sda1', sizeGiB: 60 }, { device: 'xvdf', sizeGiB: 100 }] },
    { instanceId: 'i-0a1b2c3d4e5f60006', name: 'web-linux-01', platform: 'linux', state: 'running', agent: 'online', attempts: ['ok'], commandSeconds: 30, snapshotMinutes: 2,
      volumes: [{ device: '/dev/sda1', sizeGiB: 20 }] },
    { instanceId: 'i-0a1b2c3d4e5f60007', name: 'legacy-app-02', platform: 'windows', state: 'stopped', agent: 'online', attempts: ['ok'], commandSeconds: 30, snapshotMinutes: 2,
      volumes: [{ device: '/dev/sda1', sizeGiB: 60 }] },
    { instanceId: 'i-0a1b2c3d4e5f60008', name: 'test-box-09', platform: 'windows', state: 'running', agent: 'online', attempts: ['ok'], commandSeconds: 30, snapshotMinutes: 2,
      tags: { Environment: 'test' }, volumes: [{ device: '/dev/sda1', sizeGiB: 40 }] },
  ],
};
