/**
 * The simulated AWS account: EC2 instances with EBS volumes and snapshots, SSM agents and Run Command,
 * an SNS topic, an S3 bucket and the Step Functions execution list, all on a virtual clock. It is only
 * reachable through the SDK clients (see transport.ts); the services' behaviour follows
 * ../shared/docs/aws-facts.md, not what would be convenient for the orchestrator.
 */
import { ConsistencyModel, DEFAULT_MAX_LAG_SECONDS } from './consistency.ts';
import type { LagKind } from './consistency.ts';
import type { Behaviour, Fleet } from './fleet.ts';
import { seedHistory } from './history.ts';
import { keyArn, keyIdFor, resolveKey } from './kms.ts';
import { startNight } from './nights.ts';
import { seededRandom, streamSeed } from './random.ts';
import { VirtualScheduler } from './scheduler.ts';
import type { TierQuotas } from './snapshot-tier.ts';
import { tierAt } from './snapshot-tier-state.ts';
import type { SimTier } from './snapshot-tier-state.ts';

export const ACCOUNT_ID = '123456789012';
export const REGION = 'us-east-1';
export const AZS = ['us-east-1a', 'us-east-1b', 'us-east-1c'];
export const DEFAULT_TAGS = { ConsistentSnapshot: 'WindowsVSS' };
/** The virtual clock starts at the seed's nightly time. */
export const DEFAULT_START = Date.parse('2026-11-28T00:00:00Z');
/**
 * API faults when the fleet file names none: AWS APIs throttle, fail with 5xx and lose answers now and then,
 * and every run here meets that by default (1 % of calls; half the socket timeouts of a mutating call land
 * after it took effect). `"faults": {"rate": 0}` turns them off for a test that needs a clean account.
 */
export const DEFAULT_FAULTS: NonNullable<Fleet['faults']> = { rate: 0.01, seed: 1, kinds: ['throttle', 'server', 'timeout'] };

export interface SimInstance {
  instanceId: string;
  name?: string;
  platform: 'windows' | 'linux';
  state: 'running' | 'stopped' | 'terminated';
  /** When it was terminated (`simulate`: fleet `terminatedOnNight`); EC2 lists it as terminated for about an hour. */
  terminatedAt?: number;
  tags: Record<string, string>;
  availabilityZone: string;
  rootDevice: string;
  agent: 'online' | 'offline' | 'none';
  behaviours: Behaviour[];
  commandSeconds: number;
  snapshotMinutes: number;
  /** Snapshot commands this instance has run (selects the behaviour of the next one). */
  snapshotCommandsRun: number;
  /** What the DiskShadow restore document does here (fleet file `restore`; default ok). */
  restoreBehaviour?: 'ok' | 'revert-failed' | 'disk-online-failed' | 'volume-in-use' | 'shadow-not-on-disk';
  /** The Region it lives in (absent: the home Region, REGION; see regions.ts). */
  region?: string;
}

export interface SimVolume {
  volumeId: string;
  instanceId?: string;
  device?: string;
  sizeGiB: number;
  availabilityZone: string;
  snapshotId?: string;
  createdAt: number;
  availableAt: number;
  tags: Record<string, string>;
  /** Volumes made by CreateVolume (fleet volumes are attached from the start and have none of these). */
  volumeType?: string;
  clientToken?: string;
  /** What CreateVolume was asked (ClientToken idempotency compares it). */
  createRequest?: string;
  /** `attaching` until `attachedAt`, `detaching` until `detachAt`; undefined with an instance = attached. */
  attachState?: 'attaching' | 'attached' | 'detaching';
  attachedAt?: number;
  detachAt?: number;
  deleted?: boolean;
  deletedAt?: number;
  /** The Region it lives in (absent: the home Region). */
  region?: string;
  /** EBS encryption (fleet `volumes[].encrypted`/`kmsKeyId`; a volume from a snapshot inherits its snapshot's). */
  encrypted?: boolean;
  /** The KMS key's ARN when encrypted (kms.ts). */
  kmsKeyId?: string;
}

export interface SimSnapshot {
  snapshotId: string;
  volumeId: string;
  instanceId: string;
  volumeSize: number;
  startTime: number;
  completeAt: number;
  finalState: 'completed' | 'error';
  visibleAt: number;
  description: string;
  tags: Record<string, string>;
  /** Tags added after creation (CreateTags): when each becomes visible to Describe calls (eventual consistency). */
  tagVisibleAt?: Record<string, number>;
  /**
   * DeleteSnapshot was accepted. A pending snapshot's deletion takes effect only once it completes (EBS user
   * guide, "Delete a snapshot"): until then it is still listed and still counts against the volume's pending limit.
   */
  deleted: boolean;
  deletedAt?: number;
  /** The Region it lives in (absent: its volume's Region, else the home Region; `addSnapshot` fills it in). */
  region?: string;
  encrypted?: boolean;
  /** The KMS key's ARN when encrypted. */
  kmsKeyId?: string;
  /** A copy (CopySnapshot, snapshot-copy.ts): the snapshot and Region it was copied from. */
  sourceSnapshotId?: string;
  sourceRegion?: string;
  /** Why a copy ended in `error` (DescribeSnapshots `StateMessage`). */
  stateMessage?: string;
  /** A copy: the volume whose data it holds (its own VolumeId is the arbitrary vol-ffffffff); decides incremental copies. */
  originVolumeId?: string;
  /** A copy: full or incremental, as the copy model chose (snapshot-copy.ts). */
  copyKind?: 'full' | 'incremental';
  /** The last archive or restore of the EBS Snapshots Archive tier (snapshot-tier.ts); none: standard tier. */
  tier?: SimTier;
}

export interface SimInvocation {
  commandId: string;
  instanceId: string;
  status: 'Pending' | 'InProgress' | 'Delayed' | 'Success' | 'Failed' | 'TimedOut' | 'Cancelled';
  statusDetails: string;
  responseCode: number;
  output: string;
  requestedAt: number;
  /** When the invocation becomes final (and its effects happen); Infinity = waits for a deadline. */
  finishAt: number;
  final: { status: SimInvocation['status']; statusDetails: string; responseCode: number; output: string };
  /** ListCommandInvocations does not see it before this (eventual consistency). */
  visibleAt: number;
  /** GetCommandInvocation answers InvocationDoesNotExist before this: its own read lags the listing's. */
  detailVisibleAt: number;
  effect?: () => void;
  applied: boolean;
}

export interface SimCommand {
  commandId: string;
  documentName: string;
  documentVersion?: string;
  instanceIds: string[];
  parameters: Record<string, string[]>;
  comment?: string;
  requestedAt: number;
  /** ListCommands does not list it before this (eventual consistency). */
  listedAt: number;
  timeoutSeconds: number;
  invocations: SimInvocation[];
  /** SSM cancelled it before it ran: the account's pending-invocation limit was exceeded ("Rate Exceeded"). */
  rateExceeded?: boolean;
  /** The Region whose SSM endpoint was called (absent: the home Region). */
  region?: string;
}

export interface SimDocument {
  name: string;
  versions: string[];
  /** How a simulated instance acts the document out. */
  kind: 'aws-vss' | 'diskshadow' | 'restore';
  parameters: Record<string, { allowedPattern?: string; allowedValues?: string[]; default?: string }>;
  /**
   * The Regions it exists in. SSM documents are regional: the stack creates its own in its Region only; AWS's own
   * (AWSEC2-CreateVssSnapshot) exist in every Region (absent). SendCommand elsewhere answers InvalidDocument.
   */
  regions?: string[];
}

export interface SimExecution {
  executionArn: string;
  stateMachineArn: string;
  name: string;
  status: 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT' | 'ABORTED';
  startDate: number;
  stopDate?: number;
  input: string;
  /** ListExecutions does not list it before this ("best effort", eventually consistent). */
  listedAt?: number;
}

/** An AMI registered from snapshots: while it exists, DeleteSnapshot of any of them fails InvalidSnapshot.InUse. */
export interface SimImage {
  imageId: string;
  name: string;
  snapshotIds: string[];
  createdAt: number;
  /** The Region it is registered in (absent: its first snapshot's Region). */
  region?: string;
}

/** One entry of the mutation log (contract §6): every call that changed, or tried to change, the account. */
export interface Mutation {
  at: number;
  call: string;
  ids: string[];
  ok: boolean;
  error?: string;
  /** The Region whose endpoint was called, when not the home Region. */
  region?: string;
}

/**
 * What the stack's IAM lets the workflow do, as the deployed template grants it: the snapshot documents may be
 * sent only to instances carrying the deployed selector tag (serverless.yml, "send-to-tagged-instances-only").
 */
export interface IamScope {
  snapshotSendTag: { key: string; value: string };
}

/** Account quotas the simulated services enforce. */
export interface Quotas {
  /**
   * SSM cancels a command before it runs ("Rate Exceeded") when the instances it targets would exceed the account's
   * limit for pending invocations (SSM API reference, Command.StatusDetails). AWS does not publish the number:
   * an assumption, set per fleet file (`quotas.pendingInvocations`).
   */
  pendingInvocations: number;
  /** The archive tier's quotas (snapshot-tier.ts DEFAULT_TIER_QUOTAS when unset). */
  tier?: Partial<TierQuotas>;
}
export const DEFAULT_QUOTAS: Quotas = { pendingInvocations: 5_000 };

/** Cross-Region copies (CopySnapshot) and KMS keys: fleet file `dr`, snapshot-copy.ts and kms.ts. */
export interface DrSettings {
  /** Concurrent snapshot copies per destination Region (EBS user guide, "Copy an Amazon EBS snapshot": 20). */
  copyQuota: number;
  /** The copy-time model (snapshot-copy.ts `copyDurationMs`). */
  copyTiming: CopyTiming;
}

export interface CopyTiming {
  /** Fixed time every copy takes before data moves (minutes). */
  startMinutes: number;
  /** Data moved per hour into the destination (GiB/h). */
  gibPerHour: number;
  /** An incremental copy moves this share of the volume (the blocks changed since the previous copy). */
  incrementalFraction: number;
  /** A copy that cannot use its KMS key ends in `error` this long after the call (minutes). */
  kmsFailureMinutes: number;
}

export const DEFAULT_COPY_TIMING: CopyTiming = { startMinutes: 5, gibPerHour: 100, incrementalFraction: 0.05, kmsFailureMinutes: 2 };
export const DEFAULT_DR: DrSettings = { copyQuota: 20, copyTiming: { ...DEFAULT_COPY_TIMING } };

/** A customer managed KMS key of the account (kms.ts); `alias/aws/ebs` exists in every Region without one. */
export interface SimKmsKey {
  region: string;
  keyId: string;
  aliases: string[];
  /** `no-grant`: the key is enabled but its policy does not let EBS use it for this account (no CreateGrant etc.). */
  state: 'enabled' | 'disabled' | 'pending-deletion' | 'no-grant';
}

export class World {
  /** The account's clock (ms). Inside an actor turn (scheduler.ts), reads and moves that turn's own clock. */
  get now(): number {
    const turn = this.scheduler?.current();
    return turn ? turn.now : this.globalNow;
  }
  set now(value: number) {
    const turn = this.scheduler?.current();
    if (turn) turn.now = value;
    else this.globalNow = value;
  }
  private globalNow: number;
  /** Set while executions run side by side (runner.ts): gives each Lambda turn its own clock. */
  scheduler?: VirtualScheduler;
  /** Real time spent inside the simulated services (ms): the bench takes it out of a Lambda's billed time. */
  simulatorMillis = 0;
  /** The account's own clock, whatever turn is running (the scheduler moves it). */
  get accountNow(): number {
    return this.globalNow;
  }
  set accountNow(value: number) {
    this.globalNow = value;
  }
  readonly instances = new Map<string, SimInstance>();
  readonly volumes = new Map<string, SimVolume>();
  readonly snapshots = new Map<string, SimSnapshot>();
  readonly images = new Map<string, SimImage>();
  readonly commands = new Map<string, SimCommand>();
  readonly documents = new Map<string, SimDocument>();
  readonly topics = new Set<string>();
  readonly buckets = new Map<string, Map<string, string>>();
  readonly executions: SimExecution[] = [];
  readonly published: { topicArn: string; subject?: string; message: string; at: number }[] = [];
  readonly apiCalls: Record<string, number> = {};
  /** Every mutating call, in order (contract §6 `mutations`). */
  readonly mutations: Mutation[] = [];
  /** Object ETags by `bucket/key` (conditional writes compare them). */
  readonly etags = new Map<string, string>();
  /** API faults to inject into runs against this account (fleet file `faults`, see faults.ts). */
  faults?: NonNullable<Fleet['faults']>;
  /** Eventual consistency of the read APIs (fleet file `consistency`, see consistency.ts). */
  consistency = new ConsistencyModel({ maxLagSeconds: DEFAULT_MAX_LAG_SECONDS, seed: 1 });
  iam: IamScope = { snapshotSendTag: { key: 'ConsistentSnapshot', value: 'WindowsVSS' } };
  quotas: Quotas = { ...DEFAULT_QUOTAS };
  /** Cross-Region copy settings (fleet file `dr`). */
  dr: DrSettings = { ...DEFAULT_DR, copyTiming: { ...DEFAULT_COPY_TIMING } };
  /** Customer managed KMS keys, all Regions (fleet file `dr.kmsKeys`; kms.ts). */
  readonly kmsKeys: SimKmsKey[] = [];
  /** Seeded choices of what simulated instances print and do (output variants, leftovers). */
  readonly chance: () => number = seededRandom(streamSeed(1, 'instances'));
  /**
   * Rate limit on the API calls the simulated instances make themselves (the VSS agent's CreateSnapshots,
   * see limits.ts): answers how long the call waited for a token, or `undefined` when it was still
   * throttled after `maxWaitMs`. Absent: instances are never throttled.
   */
  instanceApiGate?: (operation: string, at: number, maxWaitMs: number) => number | undefined;
  /** Invocations whose effects are still ahead on the clock, kept apart so a tick stays cheap. */
  private readonly unsettled = new Set<SimInvocation>();
  /** No unsettled invocation finishes before this: lets `settle()` return at once on most calls. */
  private nextDue = Infinity;
  private counter = 0;
  // Lookup indexes for the hot paths of large fleets (10,000 instances). Rebuilt when the maps change size,
  // so code that adds to `volumes`/`snapshots` directly stays correct; see volumesOf() for the one caveat.
  private volumeIndex?: { size: number; byInstance: Map<string, SimVolume[]>; bySnapshot: Map<string, SimVolume[]> };
  private snapshotIndex?: { size: number; byVolume: Map<string, SimSnapshot[]>; byTag: Map<string, SimSnapshot[]> };

  constructor(start = DEFAULT_START) {
    this.globalNow = start;
  }

  /** A deterministic hex id: the same fleet always gives the same ids. */
  nextHex(length: number): string {
    this.counter += 1;
    return this.counter.toString(16).padStart(length, '0').slice(-length);
  }

  /** Moves the virtual clock forward and lets everything that was due happen, in time order. */
  advanceTo(time: number): void {
    if (time > this.now) this.now = time;
    this.settle();
  }

  advanceBy(ms: number): void {
    this.advanceTo(this.now + ms);
  }

  /** Applies the effects of invocations that finished by now (snapshots are created at that moment). */
  settle(): void {
    if (this.unsettled.size === 0 || this.now < this.nextDue) return;
    const due = [...this.unsettled].filter((i) => i.finishAt <= this.now).sort((a, b) => a.finishAt - b.finishAt);
    for (const invocation of due) this.finish(invocation);
    let next = Infinity;
    for (const invocation of this.unsettled) if (invocation.finishAt < next) next = invocation.finishAt;
    this.nextDue = next;
  }

  /** Invocations not final yet (SSM's pending-invocation count): those still waiting for their effect. */
  pendingInvocationCount(): number {
    let n = 0;
    for (const invocation of this.unsettled) if (!invocation.applied && invocation.finishAt > this.now) n += 1;
    return n;
  }

  /** Registers an invocation whose effect is due at `finishAt`. Call again if `finishAt` is moved earlier. */
  track(invocation: SimInvocation): void {
    this.unsettled.add(invocation);
    if (invocation.finishAt < this.nextDue) this.nextDue = invocation.finishAt;
  }

  finish(invocation: SimInvocation, override?: SimInvocation['final']): void {
    if (invocation.applied) return;
    invocation.applied = true;
    this.unsettled.delete(invocation);
    const final = override ?? invocation.final;
    invocation.status = final.status;
    invocation.statusDetails = final.statusDetails;
    invocation.responseCode = final.responseCode;
    invocation.output = final.output;
    if (!override) invocation.effect?.();
  }

  /** Current status of a not-yet-final invocation: it runs once delivered. */
  refresh(invocation: SimInvocation): SimInvocation {
    if (!invocation.applied && invocation.finishAt <= this.now) this.finish(invocation);
    if (!invocation.applied && invocation.status === 'Pending' && this.now >= invocation.requestedAt + 1_000) {
      const instance = this.instances.get(invocation.instanceId);
      if (instance?.agent === 'online') {
        invocation.status = 'InProgress';
        invocation.statusDetails = 'InProgress';
      }
    }
    return invocation;
  }

  /**
   * The volumes whose `instanceId` is this instance, in insertion order. The index follows additions to
   * `volumes`; code that re-attaches an existing volume to another instance must call `reindexVolumes()`.
   */
  volumesOf(instanceId: string): SimVolume[] {
    return (this.volumesIndexed().byInstance.get(instanceId) ?? []).filter((v) => v.instanceId === instanceId);
  }

  /** Volumes created from this snapshot (restores), in insertion order. */
  volumesFromSnapshot(snapshotId: string): SimVolume[] {
    return (this.volumesIndexed().bySnapshot.get(snapshotId) ?? []).filter((v) => v.snapshotId === snapshotId);
  }

  reindexVolumes(): void {
    this.volumeIndex = undefined;
  }

  /** Moves an attachment on by the clock: `attaching` becomes `attached`, `detaching` ends (the volume is free). */
  settleVolume(volume: SimVolume): SimVolume {
    if (volume.attachState === 'attaching' && volume.attachedAt !== undefined && this.now >= volume.attachedAt) volume.attachState = 'attached';
    if (volume.attachState === 'detaching' && volume.detachAt !== undefined && this.now >= volume.detachAt) {
      delete volume.instanceId;
      delete volume.device;
      delete volume.attachState;
      this.reindexVolumes();
    }
    return volume;
  }

  /** Every snapshot (deleted ones included) of this volume, in insertion order. */
  snapshotsOfVolume(volumeId: string): SimSnapshot[] {
    return this.snapshotsIndexed().byVolume.get(volumeId) ?? [];
  }

  /**
   * Every snapshot that has (or had) this tag, visible yet or not, in insertion order: candidates for a tag
   * filter, which DescribeSnapshots then applies in full (so a tag changed since is only looked at once more).
   */
  snapshotsWithTag(key: string, value: string): SimSnapshot[] {
    return this.snapshotsIndexed().byTag.get(`${key}\u0000${value}`) ?? [];
  }

  /** Records a tag set on an existing snapshot (CreateTags) in the tag index. */
  snapshotTagged(snapshot: SimSnapshot, key: string, value: string): void {
    if (this.snapshotIndex) pushTo(this.snapshotIndex.byTag, `${key}\u0000${value}`, snapshot);
  }

  private snapshotsIndexed(): NonNullable<World['snapshotIndex']> {
    let index = this.snapshotIndex;
    if (!index || index.size !== this.snapshots.size) {
      index = { size: this.snapshots.size, byVolume: new Map(), byTag: new Map() };
      for (const s of this.snapshots.values()) indexSnapshot(index, s);
      this.snapshotIndex = index;
    }
    return index;
  }

  /** Adds a new snapshot and keeps the indexes current without a rebuild. */
  addSnapshot(snapshot: SimSnapshot): void {
    // A snapshot of a volume lives in the volume's Region and has its encryption (EBS user guide, "Amazon EBS
    // encryption": snapshots of encrypted volumes are encrypted with the same key). Copies set their own.
    const volume = snapshot.sourceSnapshotId === undefined ? this.volumes.get(snapshot.volumeId) : undefined;
    if (volume) {
      if (snapshot.region === undefined && volume.region !== undefined) snapshot.region = volume.region;
      if (snapshot.encrypted === undefined && volume.encrypted) {
        snapshot.encrypted = true;
        if (volume.kmsKeyId !== undefined) snapshot.kmsKeyId = volume.kmsKeyId;
      }
    }
    const indexed = this.snapshotIndex !== undefined && this.snapshotIndex.size === this.snapshots.size;
    const isNew = !this.snapshots.has(snapshot.snapshotId);
    this.snapshots.set(snapshot.snapshotId, snapshot);
    if (indexed && isNew && this.snapshotIndex) {
      indexSnapshot(this.snapshotIndex, snapshot);
      this.snapshotIndex.size = this.snapshots.size;
    } else {
      this.snapshotIndex = undefined;
    }
  }

  private volumesIndexed(): NonNullable<World['volumeIndex']> {
    let index = this.volumeIndex;
    if (!index || index.size !== this.volumes.size) {
      index = { size: this.volumes.size, byInstance: new Map(), bySnapshot: new Map() };
      for (const v of this.volumes.values()) {
        if (v.instanceId !== undefined) pushTo(index.byInstance, v.instanceId, v);
        if (v.snapshotId !== undefined) pushTo(index.bySnapshot, v.snapshotId, v);
      }
      this.volumeIndex = index;
    }
    return index;
  }

  snapshotState(snapshot: SimSnapshot): 'pending' | 'completed' | 'error' {
    return this.now >= snapshot.completeAt ? snapshot.finalState : 'pending';
  }

  countCall(key: string): void {
    this.apiCalls[key] = (this.apiCalls[key] ?? 0) + 1;
  }

  /** A lag for one change of this kind (ms), from the account's consistency model. */
  lagMs(kind: LagKind): number {
    return this.consistency.lagMs(kind);
  }

  logMutation(entry: Omit<Mutation, 'at'>): void {
    this.mutations.push({ at: this.now, ...entry });
  }

  /** The snapshot's tags as Describe calls see them now (tags added after creation show up late). */
  visibleTags(snapshot: SimSnapshot): Record<string, string> {
    const late = snapshot.tagVisibleAt;
    if (!late) return snapshot.tags;
    const out: Record<string, string> = {};
    for (const [key, value] of Object.entries(snapshot.tags)) if ((late[key] ?? 0) <= this.now) out[key] = value;
    return out;
  }

  /** Deleted for good: a deleted snapshot that was pending goes only once it completes. */
  snapshotGone(snapshot: SimSnapshot): boolean {
    return snapshot.deleted && this.now >= snapshot.completeAt;
  }

  /** Ground truth for tests and `--dump-world` (contract §6). */
  dump(): WorldDump {
    return {
      now: new Date(this.now).toISOString(),
      instances: [...this.instances.values()].map((i) => ({
        instanceId: i.instanceId,
        ...(i.name !== undefined ? { name: i.name } : {}),
        platform: i.platform,
        state: i.state,
        availabilityZone: i.availabilityZone,
        region: i.region ?? REGION,
        tags: i.tags,
      })),
      volumes: [...this.volumes.values()].filter((v) => !v.deleted).map((v) => this.settleVolume(v)).map((v) => ({
        volumeId: v.volumeId,
        instanceId: v.instanceId ?? null,
        device: v.device ?? null,
        sizeGiB: v.sizeGiB,
        availabilityZone: v.availabilityZone,
        region: v.region ?? REGION,
        ...(v.encrypted ? { encrypted: true, kmsKeyId: v.kmsKeyId ?? null } : {}),
        ...(v.snapshotId ? { snapshotId: v.snapshotId } : {}),
        ...(v.clientToken ? { state: v.instanceId ? (v.attachState ?? 'attached') : this.now < v.availableAt ? 'creating' : 'available', tags: v.tags } : {}),
      })),
      deletedVolumes: [...this.volumes.values()]
        .filter((v) => v.deleted)
        .map((v) => ({
          volumeId: v.volumeId,
          sizeGiB: v.sizeGiB,
          availabilityZone: v.availabilityZone,
          region: v.region ?? REGION,
          ...(v.snapshotId ? { snapshotId: v.snapshotId } : {}),
          tags: v.tags,
          deletedAt: new Date(v.deletedAt ?? this.now).toISOString(),
        })),
      snapshots: [...this.snapshots.values()]
        .filter((s) => !s.deleted)
        .map((s) => ({
          ...snapshotDump(s, this),
          ...(s.tier ? { storageTier: tierAt(this.now, s.tier).storageTier, lastTiering: tierAt(this.now, s.tier).status } : {}),
        })),
      deletedSnapshots: [...this.snapshots.values()]
        .filter((s) => s.deleted)
        .map((s) => ({ ...snapshotDump(s, this), deletedAt: new Date(s.deletedAt ?? this.now).toISOString() })),
      images: [...this.images.values()].map((i) => ({ imageId: i.imageId, name: i.name, snapshotIds: i.snapshotIds, region: i.region ?? this.snapshots.get(i.snapshotIds[0] ?? '')?.region ?? REGION })),
      commands: [...this.commands.values()].map((c) => ({
        commandId: c.commandId,
        documentName: c.documentName,
        ...(c.documentVersion ? { documentVersion: c.documentVersion } : {}),
        instanceIds: c.instanceIds,
        parameters: c.parameters,
        ...(c.comment ? { comment: c.comment } : {}),
        requestedAt: new Date(c.requestedAt).toISOString(),
        invocations: c.invocations.map((i) => ({ instanceId: i.instanceId, status: this.refresh(i).status, statusDetails: i.statusDetails })),
      })),
      published: this.published.map((p) => ({ topicArn: p.topicArn, subject: p.subject ?? null, message: p.message })),
      objects: [...this.buckets.entries()].flatMap(([bucket, objects]) => [...objects.keys()].map((key) => `s3://${bucket}/${key}`)),
      apiCalls: { ...this.apiCalls },
      mutations: this.mutations.map((m) => ({ at: new Date(m.at).toISOString(), call: m.call, ids: m.ids, ok: m.ok, ...(m.error ? { error: m.error } : {}), ...(m.region ? { region: m.region } : {}) })),
    };
  }
}

/**
 * What the dump adds to a snapshot: its Region (always), its encryption, and for a copy its source, how it was
 * copied and, once failed, why.
 */
/** A snapshot as the dump shows it, live or deleted (contract §6). */
function snapshotDump(s: SimSnapshot, world: World): { snapshotId: string; volumeId: string; instanceId: string; state: string; startTime: string; tags: Record<string, string> } & SnapshotDumpExtras {
  const state = world.snapshotState(s);
  return {
    snapshotId: s.snapshotId,
    volumeId: s.volumeId,
    instanceId: s.instanceId,
    state,
    startTime: new Date(s.startTime).toISOString(),
    tags: s.tags,
    region: s.region ?? REGION,
    ...(s.encrypted ? { encrypted: true, kmsKeyId: s.kmsKeyId ?? null } : {}),
    ...(s.sourceSnapshotId !== undefined ? { sourceSnapshotId: s.sourceSnapshotId, sourceRegion: s.sourceRegion ?? REGION } : {}),
    ...(s.copyKind ? { copyKind: s.copyKind, completeAt: new Date(s.completeAt).toISOString() } : {}),
    ...(state === 'error' && s.stateMessage ? { stateMessage: s.stateMessage } : {}),
  };
}

interface SnapshotDumpExtras {
  region: string;
  encrypted?: boolean;
  kmsKeyId?: string | null;
  sourceSnapshotId?: string;
  sourceRegion?: string;
  copyKind?: 'full' | 'incremental';
  /** When a copy is (or was) due to end, completed or in error. */
  completeAt?: string;
  stateMessage?: string;
}

function indexSnapshot(index: { byVolume: Map<string, SimSnapshot[]>; byTag: Map<string, SimSnapshot[]> }, s: SimSnapshot): void {
  pushTo(index.byVolume, s.volumeId, s);
  for (const [key, value] of Object.entries(s.tags)) pushTo(index.byTag, `${key}\u0000${value}`, s);
}

function pushTo<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

export interface WorldDump {
  now: string;
  instances: { instanceId: string; name?: string; platform: string; state: string; availabilityZone: string; region: string; tags: Record<string, string> }[];
  /** `state` and `tags` only on volumes made by CreateVolume (restores). */
  volumes: {
    volumeId: string;
    instanceId: string | null;
    device: string | null;
    sizeGiB: number;
    availabilityZone: string;
    region: string;
    encrypted?: boolean;
    kmsKeyId?: string | null;
    snapshotId?: string;
    state?: string;
    tags?: Record<string, string>;
  }[];
  /** Volumes deleted by DeleteVolume, with what they were. */
  deletedVolumes: { volumeId: string; sizeGiB: number; availabilityZone: string; region: string; snapshotId?: string; tags: Record<string, string>; deletedAt: string }[];
  /** A copy's `volumeId` is the arbitrary `vol-ffffffff` (as EC2 shows it); its `instanceId` is its source's. */
  /** `storageTier` and `lastTiering` only on snapshots that were archived or restored (snapshot-tier.ts). */
  snapshots: ({ snapshotId: string; volumeId: string; instanceId: string; state: string; startTime: string; tags: Record<string, string>; storageTier?: string; lastTiering?: string } & SnapshotDumpExtras)[];
  /** Snapshots deleted by DeleteSnapshot (a pending one is gone only once it completes), with what they were. */
  deletedSnapshots: ({ snapshotId: string; volumeId: string; instanceId: string; state: string; startTime: string; tags: Record<string, string>; deletedAt: string } & SnapshotDumpExtras)[];
  /** AMIs registered from snapshots (fleet `history` entries `usedByImage`). */
  images: { imageId: string; name: string; snapshotIds: string[]; region: string }[];
  commands: {
    commandId: string;
    documentName: string;
    documentVersion?: string;
    instanceIds: string[];
    parameters: Record<string, string[]>;
    comment?: string;
    requestedAt: string;
    invocations: { instanceId: string; status: string; statusDetails: string }[];
  }[];
  published: { topicArn: string; subject: string | null; message: string }[];
  objects: string[];
  apiCalls: Record<string, number>;
  /** Every mutating call in order: when, what, on which ids, and whether it took effect (contract §6). */
  mutations: { at: string; call: string; ids: string[]; ok: boolean; error?: string; region?: string }[];
}

/**
 * Builds a world from a fleet file: instances (in the file's order), their volumes, agents and behaviours, the
 * snapshots they already have (`history`, history.ts), set up for the first night (nights.ts).
 */
/** A fleet volume's encryption: its key (default alias/aws/ebs) as a key ARN of its Region. */
function volumeEncryption(world: World, region: string, v: { encrypted?: boolean; kmsKeyId?: string }): Pick<SimVolume, 'encrypted' | 'kmsKeyId'> {
  if (!v.encrypted && v.kmsKeyId === undefined) return {};
  const found = resolveKey(world, region, v.kmsKeyId ?? 'alias/aws/ebs');
  // parseFleet has checked the key exists; an unresolvable one would stay as written.
  return { encrypted: true, kmsKeyId: 'key' in found ? keyArn(found.key.region, found.key.keyId) : (v.kmsKeyId as string) };
}

export function worldFromFleet(fleet: Fleet, start = DEFAULT_START): World {
  const world = new World(start);
  world.faults = fleet.faults ?? { ...DEFAULT_FAULTS, kinds: [...DEFAULT_FAULTS.kinds] };
  world.consistency = new ConsistencyModel({ maxLagSeconds: fleet.consistency?.maxLagSeconds ?? DEFAULT_MAX_LAG_SECONDS, seed: fleet.consistency?.seed ?? 1 });
  if (fleet.quotas?.pendingInvocations !== undefined) world.quotas.pendingInvocations = fleet.quotas.pendingInvocations;
  if (fleet.dr?.copyQuota !== undefined) world.dr.copyQuota = fleet.dr.copyQuota;
  for (const [key, value] of Object.entries(fleet.dr?.copyTiming ?? {})) if (value !== undefined) world.dr.copyTiming[key as keyof CopyTiming] = value;
  for (const key of fleet.dr?.kmsKeys ?? []) {
    world.kmsKeys.push({ region: key.region, keyId: key.keyId ?? keyIdFor(key.region, key.alias ?? ''), aliases: key.alias ? [key.alias] : [], state: key.state });
  }
  const givenIds = new Set(fleet.instances.flatMap((i) => (i.instanceId ? [i.instanceId] : [])));
  const instanceIds: string[] = [];
  for (const [index, spec] of fleet.instances.entries()) {
    // A generated id never takes one the fleet gives to another instance.
    let instanceId = spec.instanceId ?? `i-0${world.nextHex(16)}`;
    while (spec.instanceId === undefined && (givenIds.has(instanceId) || world.instances.has(instanceId))) instanceId = `i-0${world.nextHex(16)}`;
    const az = spec.region ? `${spec.region}${'abc'[index % 3]}` : (AZS[index % AZS.length] as string);
    const volumes = spec.volumes ?? [{ device: '/dev/sda1', sizeGiB: 30 }];
    const instance: SimInstance = {
      instanceId,
      ...(spec.name !== undefined ? { name: spec.name } : {}),
      platform: spec.platform,
      state: spec.state,
      tags: { ...(spec.tags ?? DEFAULT_TAGS), ...(spec.name !== undefined ? { Name: spec.name } : {}) },
      availabilityZone: az,
      rootDevice: '/dev/sda1',
      agent: spec.agent,
      behaviours: spec.attempts,
      commandSeconds: spec.commandSeconds,
      snapshotMinutes: spec.snapshotMinutes,
      snapshotCommandsRun: 0,
      ...(spec.restore && spec.restore !== 'ok' ? { restoreBehaviour: spec.restore } : {}),
      ...(spec.region && spec.region !== REGION ? { region: spec.region } : {}),
    };
    world.instances.set(instanceId, instance);
    instanceIds.push(instanceId);
    for (const v of volumes) {
      const volumeId = `vol-0${world.nextHex(16)}`;
      world.volumes.set(volumeId, {
        volumeId,
        instanceId,
        device: v.device,
        sizeGiB: v.sizeGiB,
        availabilityZone: az,
        createdAt: start,
        availableAt: start,
        tags: {},
        ...(instance.region ? { region: instance.region } : {}),
        ...volumeEncryption(world, instance.region ?? REGION, v),
      });
    }
  }
  // After every instance and volume, so a fleet's ids do not depend on its history.
  seedHistory(world, fleet.instances, instanceIds, start);
  startNight(world, fleet.instances, instanceIds, 1, start);
  return world;
}
