/**
 * Virtual time for executions that run side by side: the children of a Distributed Map each run their own
 * loop (Task, Choice, Wait) at the same time in AWS, and the simulated account has one clock. Each run of a
 * Lambda handler is an *actor turn*: it starts at its actor's own time — when the actor's Wait ends, and never
 * before its previous turn ended — and inside the turn time moves only for that actor (API latency, SDK back-
 * off: `world.advanceBy` inside a turn moves the turn's clock, not the account's). The account's clock moves
 * when every actor is waiting: to the earliest time one of them may go on. So a thousand children waiting 20 s
 * each take 20 s, not 20,000, and one child's slow turn delays no other.
 *
 * The async context of a turn follows every `await` in it (node:async_hooks AsyncLocalStorage), so the
 * handler's SDK calls, the simulated services they reach and `clock.now()` all see the turn's clock.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

/** The clock of one actor turn. */
export interface Turn {
  actor: string;
  now: number;
}

export class VirtualScheduler {
  private readonly turns = new AsyncLocalStorage<Turn>();
  /** Per actor: when its last turn ended, and until when its current Wait lasts. */
  private readonly lastEnd = new Map<string, number>();
  private readonly wakeAt = new Map<string, number>();
  /** Turns waiting for the account's clock to reach their start. */
  private readonly waiting: { at: number; release: () => void }[] = [];
  private running = 0;
  /** Turns whose start has come, waiting for the one running to end. */
  private queued = 0;
  private exclusive: Promise<void> = Promise.resolve();
  private activity = 0;
  private watching = false;

  constructor(
    private readonly getGlobal: () => number,
    private readonly setGlobal: (t: number) => void,
  ) {}

  /**
   * Ends the scheduler's async context. Every enabled AsyncLocalStorage costs a little on every promise the
   * process creates afterwards (node:async_hooks propagates each one), so one left behind per execution made
   * each later execution in the process slower: night 200 of a simulation took 2.5 times night 2.
   */
  dispose(): void {
    this.turns.disable();
  }

  /** The turn running in this async context, if any. */
  current(): Turn | undefined {
    return this.turns.getStore();
  }

  /** An actor entered a Wait state: it may go on at `until` at the earliest (absolute ms), or `seconds` after its last turn. */
  waitStarted(actor: string, wait: { until?: number; seconds?: number }): void {
    const from = Math.max(this.lastEnd.get(actor) ?? this.getGlobal(), this.wakeAt.get(actor) ?? 0);
    const until = wait.until ?? from + (wait.seconds ?? 0) * 1000;
    this.wakeAt.set(actor, Math.max(from, until));
  }

  /** Runs one turn of `actor`: waits for its start in virtual time, then runs `fn` on the turn's own clock. */
  async turn<T>(actor: string, fn: () => Promise<T>): Promise<T> {
    const start = Math.max(this.lastEnd.get(actor) ?? 0, this.wakeAt.get(actor) ?? 0);
    this.wakeAt.delete(actor);
    if (start > this.getGlobal()) await this.until(start);
    // One turn at a time in real time (virtual time is unaffected): a turn's real duration is then its own
    // work, which the bench bills as Lambda time, not the work of turns interleaved with it.
    const previous = this.exclusive;
    let release: () => void = () => undefined;
    this.exclusive = new Promise<void>((resolve) => {
      release = resolve;
    });
    this.queued += 1;
    await previous;
    this.queued -= 1;
    const turn: Turn = { actor, now: Math.max(this.getGlobal(), start) };
    this.running += 1;
    this.activity += 1;
    try {
      return await this.turns.run(turn, fn);
    } finally {
      this.running -= 1;
      this.activity += 1;
      this.lastEnd.set(actor, turn.now);
      release();
    }
  }

  /**
   * Runs one API call of the current turn on a lane of its own: calls a handler makes at the same time (a
   * bounded Promise.all) overlap in virtual time as they do on the network — each starts at the turn's time
   * when it is made and the turn's clock moves to the latest end — while calls one after the other add up.
   */
  async lane<T>(fn: () => Promise<T>): Promise<T> {
    const turn = this.current();
    if (!turn) return fn();
    const lane: Turn = { actor: turn.actor, now: turn.now };
    try {
      return await this.turns.run(lane, fn);
    } finally {
      turn.now = Math.max(turn.now, lane.now);
    }
  }

  /** The latest time any actor reached: where the account's clock stands once everything has run. */
  latest(): number {
    return Math.max(this.getGlobal(), ...this.lastEnd.values(), ...this.wakeAt.values());
  }

  private until(at: number): Promise<void> {
    return new Promise<void>((release) => {
      this.waiting.push({ at, release });
      this.watch();
    });
  }

  /**
   * Moves the account's clock when nothing can run any more: no turn running and nothing happened for two
   * rounds of the event loop (a child between two of its states is busy in promise callbacks, which all run
   * before the next round).
   */
  private watch(): void {
    if (this.watching) return;
    this.watching = true;
    let seen = -1;
    const check = () => {
      if (this.waiting.length === 0) {
        this.watching = false;
        return;
      }
      if (this.running > 0 || this.queued > 0 || this.activity !== seen) {
        seen = this.activity;
        setImmediate(check);
        return;
      }
      // An actor in a Wait that has not asked for its next turn yet counts too: the clock must not pass its end.
      const next = Math.min(...this.waiting.map((w) => w.at), ...this.wakeAt.values());
      if (next > this.getGlobal()) this.setGlobal(next);
      const now = this.getGlobal();
      for (const w of this.waiting.filter((x) => x.at <= now)) {
        this.waiting.splice(this.waiting.indexOf(w), 1);
        w.release();
      }
      this.activity += 1;
      seen = -1;
      setImmediate(check);
    };
    setImmediate(check);
  }
}
