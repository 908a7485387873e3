import { describe, expect, it } from 'vitest';
import { decideOwner, parseRetainTag } from '../../src/lib/retention/policy.ts';
import type { RetentionSet, SetKind } from '../../src/lib/retention/policy.ts';

const DAY = 86_400_000;
const NOW = Date.parse('2026-12-01T00:10:00Z');
const RUN_START = Date.parse('2026-12-01T00:00:00Z');
const defaults = { count: 2, days: 0, terminatedDays: 5, maxDeletes: 1000, archiveAfterDays: 0 };

function set(ageDays: number, kind: SetKind = 'verified', extra: Partial<RetentionSet> = {}): RetentionSet {
  const start = RUN_START - ageDays * DAY + 60_000;
  return { key: `i-1/${ageDays}/1`, owner: 'i-1', runId: `r${ageDays}`, attempt: 1, start, kind, snapshotIds: [`snap-${ageDays}`], held: [], pending: false, ...extra };
}
const kept = (decisions: ReturnType<typeof decideOwner>) => decisions.filter((d) => 'keep' in d).map((d) => d.set.runId).sort();

describe('parseRetainTag', () => {
  it.each([
    ['count=10', { count: 10, days: 0 }],
    ['days=30', { count: 0, days: 30 }],
    ['count=3,days=14', { count: 3, days: 14 }],
    ['days=14, count=3', { count: 3, days: 14 }],
    ['count=0', { count: 0, days: 0 }],
  ])('reads %s', (value, rule) => expect(parseRetainTag(value)).toEqual({ rule }));

  it.each(['', 'count', 'count=', 'count=-1', 'count=1,count=2', 'days=3651', 'count=1001', 'count=1;days=2', 'keep=3', 'count=1,days=2,x=3', 'COUNT=3', 'count=3,'])(
    'refuses %j with a reason',
    (value) => expect(parseRetainTag(value)).toEqual({ error: expect.stringMatching(/expected count=N|given twice|must be 0-/) }),
  );
});

describe('decideOwner', () => {
  it('keeps the newest verified set however old, while the instance exists', () => {
    const sets = [set(40), set(41), set(1, 'fallback'), set(2, 'fallback'), set(3, 'fallback')];
    const decisions = decideOwner(sets, { exists: true, rule: { count: 0, days: 0 } }, { runStart: RUN_START, now: NOW, defaults });
    expect(kept(decisions)).toEqual(['r40']);
    expect(decisions.find((d) => d.set.runId === 'r40')).toMatchObject({ keep: 'newest-verified' });
  });

  it('ranks fallbacks among all sets, so they never push a verified set out of the count', () => {
    const sets = [set(1, 'fallback'), set(2), set(3), set(4)];
    expect(kept(decideOwner(sets, { exists: true }, { runStart: RUN_START, now: NOW, defaults }))).toEqual(['r1', 'r2', 'r3']);
  });

  it('never touches a pending set or one of this run', () => {
    const sets = [set(0, 'verified', { start: RUN_START + 1 }), set(9, 'unverified', { pending: true }), set(10)];
    const decisions = decideOwner(sets, { exists: true, rule: { count: 0, days: 0 } }, { runStart: RUN_START, now: NOW, defaults });
    expect(decisions.map((d) => ('keep' in d ? d.keep : 'delete'))).toEqual(['this-run', 'pending', 'delete']);
  });

  it('keeps a held set whole when it is due, and says so', () => {
    const decisions = decideOwner([set(1), set(9, 'verified', { held: ['snap-9'] })], { exists: true, rule: { count: 1, days: 0 } }, { runStart: RUN_START, now: NOW, defaults });
    expect(decisions.map((d) => ('keep' in d ? d.keep : 'delete'))).toEqual(['newest-verified', 'held']);
  });

  it('keeps a gone instance’s last set for terminatedDays after it was first seen gone, without the count rule', () => {
    const sets = [set(1), set(2), set(3)];
    const recent = decideOwner(sets, { exists: false, goneSince: NOW - 4 * DAY }, { runStart: RUN_START, now: NOW, defaults });
    expect(kept(recent)).toEqual(['r1']);
    expect(recent[0]).toMatchObject({ keep: 'terminated-grace' });
    const later = decideOwner(sets, { exists: false, goneSince: NOW - 5 * DAY }, { runStart: RUN_START, now: NOW, defaults });
    expect(kept(later)).toEqual([]);
    expect(later[0]).toMatchObject({ deleteReason: expect.stringMatching(/instance is gone for 5\+ days/) });
  });

  it('measures days from when retention runs: with days=3 the set of three nights ago goes', () => {
    const sets = [set(0, 'verified', { start: RUN_START + 60_000 }), set(1), set(2), set(3)];
    expect(kept(decideOwner(sets, { exists: true, rule: { count: 0, days: 3 } }, { runStart: RUN_START, now: NOW, defaults }))).toEqual(['r0', 'r1', 'r2']);
  });
});
