/**
 * The tier a simulated snapshot is in, by the clock, from its last archive or restore (no imports: world.ts and
 * snapshot-tier.ts both use it). The behaviour and its sources: snapshot-tier.ts.
 */
const DAY_MS = 86_400_000;

/** The last tiering operation of a snapshot, kept on the snapshot (`SimSnapshot.tier`). */
export interface SimTier {
  kind: 'archival' | 'temporary-restore' | 'permanent-restore';
  startedAt: number;
  doneAt: number;
  /** When the (last) archival completed. */
  archivedAt?: number;
  /** Temporary restore: days it lasts once done. */
  days?: number;
}

export type TieringStatus =
  | 'archival-in-progress'
  | 'archival-completed'
  | 'temporary-restore-in-progress'
  | 'temporary-restore-completed'
  | 'permanent-restore-in-progress'
  | 'permanent-restore-completed';

export interface TierView {
  storageTier: 'standard' | 'archive';
  status?: TieringStatus;
  startedAt?: number;
  progress?: number;
  archivedAt?: number;
  restoreExpiry?: number;
}

/** Where a snapshot with this last tiering operation is at `now`. */
export function tierAt(now: number, t: SimTier | undefined): TierView {
  if (!t) return { storageTier: 'standard' };
  const done = now >= t.doneAt;
  const progress = done ? 100 : Math.floor(((now - t.startedAt) / Math.max(1, t.doneAt - t.startedAt)) * 100);
  const base = { startedAt: t.startedAt, progress };
  if (t.kind === 'archival') {
    return done ? { ...base, storageTier: 'archive', status: 'archival-completed', archivedAt: t.doneAt } : { ...base, storageTier: 'standard', status: 'archival-in-progress' };
  }
  const archivedAt = t.archivedAt !== undefined ? { archivedAt: t.archivedAt } : {};
  if (!done) return { ...base, ...archivedAt, storageTier: 'archive', status: `${t.kind}-in-progress` };
  if (t.kind === 'permanent-restore') return { ...base, storageTier: 'standard', status: 'permanent-restore-completed' };
  const expiry = t.doneAt + (t.days ?? 1) * DAY_MS;
  // Re-archived automatically when the temporary restore ends.
  return now < expiry ? { ...base, ...archivedAt, storageTier: 'standard', status: 'temporary-restore-completed', restoreExpiry: expiry } : { ...base, ...archivedAt, storageTier: 'archive', status: 'temporary-restore-completed' };
}

