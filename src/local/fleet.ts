/**
 * The fleet file (contract §5): the simulated account's instances and how each behaves when it gets a
 * snapshot command. JSON or YAML; checked strictly so a typo in a test fleet is an error, not a silently
 * different world.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { REGION_NAME } from '../lib/aws-region.ts';

export const BEHAVIOURS = [
  'ok',
  'vss-timeout',
  'writer-failure',
  'access-denied',
  'undeliverable',
  'hang',
  'no-snapshots',
  'untagged',
  'crash-consistent',
  'snapshot-error',
  'agent-lost',
  'partial-snapshots',
  'component-excluded',
] as const;
export type Behaviour = (typeof BEHAVIOURS)[number];

export const FAULT_KINDS = ['throttle', 'server', 'timeout'] as const;

/** Whose a pre-existing snapshot set is (src/local/history.ts gives each its tags). */
export const HISTORY_OWNERS = ['ours', 'ours-fallback', 'other-stage', 'foreign'] as const;
export type HistoryOwner = (typeof HISTORY_OWNERS)[number];
/** The longest `vss-snapshots simulate` (nights 1–400); `nights` and `terminatedOnNight` name nights in this range. */
export const MAX_NIGHTS = 400;

/** One pre-existing snapshot set of an instance (one completed snapshot per volume), `ageDays` old when the simulation starts. */
const HistoryEntry = z.strictObject({
  ageDays: z.number().min(0, 'must be ≥ 0').max(3650, 'must be ≤ 3650 (ten years)'),
  owner: z.enum(HISTORY_OWNERS, `must be one of ${HISTORY_OWNERS.join(', ')}`),
  hold: z.boolean().optional(),
  usedByImage: z.boolean().optional(),
});
export type HistoryEntry = z.infer<typeof HistoryEntry>;

/** AWS Region names (us-east-1, eu-central-2, us-gov-west-1). */
const RegionName = z.string().regex(REGION_NAME, 'must be an AWS Region name like us-west-2');
export const KMS_KEY_STATES = ['enabled', 'disabled', 'pending-deletion', 'no-grant'] as const;

const FleetInstance = z.strictObject({
  instanceId: z.string().regex(/^i-[0-9a-f]{8}([0-9a-f]{9})?$/, 'must look like i- followed by 8 or 17 lowercase hex digits').optional(),
  name: z.string().max(256).optional(),
  platform: z.enum(['windows', 'linux']).default('windows'),
  state: z.enum(['running', 'stopped']).default('running'),
  tags: z.record(z.string().min(1).max(128), z.string().max(256)).optional(),
  volumes: z
    .array(
      z.strictObject({
        device: z.string().regex(/^(\/dev\/)?(sd[a-z]{1,2}[0-9]*|xvd[a-z]{1,2}[0-9]*)$/, 'must be a device name like /dev/sda1 or xvdf'),
        sizeGiB: z.number().int().min(1).max(65536).default(30),
        /** EBS encryption; its snapshots are encrypted with the same key. */
        encrypted: z.boolean().optional(),
        /** The volume's key (alias/…, key id or key ARN) in the instance's Region; default alias/aws/ebs. Implies encrypted. */
        kmsKeyId: z.string().min(1).max(2048).optional(),
      }),
    )
    .max(40)
    .optional(),
  agent: z.enum(['online', 'offline', 'none']).default('online'),
  attempts: z.array(z.enum(BEHAVIOURS)).min(1).default(['ok']),
  commandSeconds: z.number().min(0).max(172_800).default(30),
  snapshotMinutes: z.number().min(0).max(10_000).default(2),
  /** What the DiskShadow restore document does when this instance is a restore target. */
  restore: z.enum(['ok', 'revert-failed', 'disk-online-failed', 'volume-in-use', 'shadow-not-on-disk']).optional(),
  /** Snapshot sets that exist before the first night (src/local/history.ts). */
  history: z.array(HistoryEntry).max(1000, 'must list at most 1000 sets').optional(),
  /** Attempts on a given night (`"5": ["writer-failure"]`) instead of `attempts`; night numbers checked in parseFleet. */
  nights: z.record(z.string(), z.array(z.enum(BEHAVIOURS)).min(1, 'must list at least one behaviour')).optional(),
  /** Terminated at the start of this night (before its run). */
  terminatedOnNight: z.number().int('must be a whole number').min(1, `must be from 1 to ${MAX_NIGHTS}`).max(MAX_NIGHTS, `must be from 1 to ${MAX_NIGHTS}`).optional(),
  /** The Region it lives in (default: the home Region us-east-1); its volumes and snapshots live there too. */
  region: RegionName.optional(),
});

/** Cross-Region copies (src/local/snapshot-copy.ts) and KMS keys (src/local/kms.ts). */
const DrSection = z.strictObject({
  /** Concurrent CopySnapshot copies per destination Region (AWS: 20). */
  copyQuota: z.number().int('must be a whole number').min(1, 'must be ≥ 1').max(1000, 'must be ≤ 1000').optional(),
  /** The copy-time model: startMinutes + sizeGiB × (1 or incrementalFraction) / gibPerHour hours. */
  copyTiming: z
    .strictObject({
      startMinutes: z.number().min(0, 'must be ≥ 0').max(1440, 'must be ≤ 1440').optional(),
      gibPerHour: z.number().min(0.1, 'must be ≥ 0.1').max(1_000_000, 'must be ≤ 1000000').optional(),
      incrementalFraction: z.number().min(0, 'must be from 0 to 1').max(1, 'must be from 0 to 1').optional(),
      kmsFailureMinutes: z.number().min(0, 'must be ≥ 0').max(1440, 'must be ≤ 1440').optional(),
    })
    .optional(),
  /** Customer managed KMS keys; alias/aws/ebs exists (enabled) in every Region without being listed. */
  kmsKeys: z
    .array(
      z.strictObject({
        region: RegionName,
        alias: z.string().regex(/^alias\/[a-zA-Z0-9/_-]{1,250}$/, 'must look like alias/my-key').refine((a) => !a.startsWith('alias/aws/'), 'must not start with alias/aws/ (reserved for AWS managed keys)').optional(),
        keyId: z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'must be a key id (UUID, lowercase)').optional(),
        state: z.enum(KMS_KEY_STATES, `must be one of ${KMS_KEY_STATES.join(', ')}`).default('enabled'),
      }),
    )
    .max(1000)
    .optional(),
});

export const FleetSchema = z.strictObject({
  instances: z.array(FleetInstance).max(100_000),
  /** API faults (docs/reliability.md). Absent: a realistic 1 % (src/local/world.ts DEFAULT_FAULTS); rate 0 turns them off. */
  faults: z
    .strictObject({
      rate: z.number().min(0).max(0.5),
      seed: z.number().int().default(1),
      kinds: z.array(z.enum(FAULT_KINDS)).min(1).default(['throttle', 'server', 'timeout']),
    })
    .optional(),
  /** Eventual consistency of the read APIs (src/local/consistency.ts). Absent: realistic lags up to 10 s; 0 turns them off. */
  consistency: z
    .strictObject({
      maxLagSeconds: z.number().min(0).max(600),
      seed: z.number().int().default(1),
    })
    .optional(),
  /** Account quotas the simulated services enforce (src/local/world.ts Quotas). */
  quotas: z
    .strictObject({
      pendingInvocations: z.number().int().min(1).max(1_000_000).optional(),
    })
    .optional(),
  /** Regions and disaster-recovery copies: copy quota, copy timing, KMS keys per Region. */
  dr: DrSection.optional(),
});

export type Fleet = z.infer<typeof FleetSchema>;
export type FleetInstance = z.infer<typeof FleetInstance>;

export class FleetError extends Error {
  override name = 'FleetError';
}

/** Validates a fleet object; errors name the offending path (`instances[2].attempts[0]`). */
export function parseFleet(raw: unknown, source = 'fleet'): Fleet {
  const result = FleetSchema.safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.slice(0, 5).map((issue) => {
      const path = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '');
      return `${path || '(top level)'}: ${issue.message}`;
    });
    throw new FleetError(`${source} is not a valid fleet file: ${problems.join('; ')}`);
  }
  const ids = new Set<string>();
  for (const [i, instance] of result.data.instances.entries()) {
    // The Name tag is the instance's name (contract §5): one given only in `tags` names it too.
    if (instance.name === undefined && instance.tags?.Name !== undefined) instance.name = instance.tags.Name;
    if (instance.instanceId) {
      if (ids.has(instance.instanceId)) throw new FleetError(`${source}: instances[${i}].instanceId ${instance.instanceId} appears twice.`);
      ids.add(instance.instanceId);
    }
    for (const night of Object.keys(instance.nights ?? {})) {
      if (!/^[1-9][0-9]*$/.test(night) || Number(night) > MAX_NIGHTS) {
        throw new FleetError(`${source}: instances[${i}].nights: "${night}" is not a night number; nights are numbered "1" to "${MAX_NIGHTS}".`);
      }
    }
    if (instance.terminatedOnNight !== undefined) {
      for (const night of Object.keys(instance.nights ?? {})) {
        if (Number(night) >= instance.terminatedOnNight) {
          throw new FleetError(`${source}: instances[${i}].nights["${night}"] is on or after its terminatedOnNight (${instance.terminatedOnNight}): a terminated instance runs no command.`);
        }
      }
    }
    const devices = new Set<string>();
    for (const [n, v] of (instance.volumes ?? []).entries()) {
      if (devices.has(v.device)) throw new FleetError(`${source}: instances[${i}] has device ${v.device} twice.`);
      devices.add(v.device);
      if (v.kmsKeyId !== undefined) {
        if (v.encrypted === false) throw new FleetError(`${source}: instances[${i}].volumes[${n}].kmsKeyId is set but encrypted is false; a volume with a KMS key is encrypted (drop one of them).`);
        const region = instance.region ?? 'us-east-1';
        if (!keyNamed(result.data, region, v.kmsKeyId)) {
          throw new FleetError(`${source}: instances[${i}].volumes[${n}].kmsKeyId "${v.kmsKeyId}" names no key in ${region}: use alias/aws/ebs or a key listed in dr.kmsKeys for ${region} (by alias, keyId or key ARN).`);
        }
      }
    }
  }
  const keys = new Set<string>();
  for (const [k, key] of (result.data.dr?.kmsKeys ?? []).entries()) {
    if (key.alias === undefined && key.keyId === undefined) throw new FleetError(`${source}: dr.kmsKeys[${k}] needs an alias or a keyId (or both).`);
    for (const name of [key.alias, key.keyId]) {
      if (name === undefined) continue;
      if (keys.has(`${key.region}/${name}`)) throw new FleetError(`${source}: dr.kmsKeys[${k}]: ${name} appears twice in ${key.region}.`);
      keys.add(`${key.region}/${name}`);
    }
  }
  return result.data;
}

/** Whether `reference` names alias/aws/ebs or a listed key of `region` (alias, key id, key ARN, alias ARN). */
function keyNamed(fleet: Fleet, region: string, reference: string): boolean {
  const arn = /^arn:aws:kms:([a-z0-9-]+):[0-9]{12}:(key|alias)\/(.+)$/.exec(reference);
  if (arn) return arn[1] === region && keyNamed(fleet, region, arn[2] === 'alias' ? `alias/${arn[3]}` : (arn[3] as string));
  if (reference === 'alias/aws/ebs') return true;
  return (fleet.dr?.kmsKeys ?? []).some((k) => k.region === region && (k.alias === reference || k.keyId === reference));
}

export function loadFleetFile(path: string): Fleet {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new FleetError(`Cannot read fleet file ${path}: ${(error as Error).message}`);
  }
  return parseFleet(parseFleetText(text, path), path);
}

/**
 * A fleet file is JSON or YAML (contract §5), whatever its name: `.yaml`/`.yml` is read as YAML, anything
 * else as JSON first and, when that fails, as YAML (a superset of JSON), so `fleet.txt` or `fleet` in YAML works.
 */
export function parseFleetText(text: string, path: string): unknown {
  const yamlName = /\.ya?ml$/i.test(path);
  if (!yamlName) {
    try {
      return JSON.parse(text);
    } catch (jsonError) {
      let raw: unknown;
      try {
        raw = parseYaml(text);
      } catch {
        raw = undefined;
      }
      // Plain text parses as a YAML string: only a mapping can be a fleet, so report the JSON error then.
      if (raw !== null && typeof raw === 'object' && !Array.isArray(raw)) return raw;
      throw new FleetError(`Fleet file ${path} is not valid JSON or YAML: ${(jsonError as Error).message}`);
    }
  }
  try {
    return parseYaml(text);
  } catch (error) {
    throw new FleetError(`Fleet file ${path} is not valid YAML: ${(error as Error).message}`);
  }
}
