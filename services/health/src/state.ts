import type { HealthState, HealthStreaks, ProbeOutcome } from '@homelab/bus';

/*
 * The state machine of one target, with flap damping. A probe's outcome (ok / degraded / fail)
 * only moves the state after enough agreeing outcomes in a row:
 *   - worse needs `failuresBeforeDown` (N) in a row: N failures → down; N not-ok (degraded or
 *     failed) from up → degraded;
 *   - better needs `successesBeforeUp` (M) in a row: M ok → up; M not-failed from down → degraded;
 *   - from `unknown` (never probed, or just added) the first outcome decides at once.
 * A flapping target therefore keeps its state instead of emitting an event per probe.
 */

export interface Damping {
  failuresBeforeDown: number;
  successesBeforeUp: number;
}

export interface StateCore {
  state: HealthState;
  /** When the state began (ISO 8601). */
  since: string;
  streaks: HealthStreaks;
}

export const ZERO_STREAKS: HealthStreaks = Object.freeze({ fail: 0, ok: 0, notOk: 0, notFail: 0 });

export interface Step {
  core: StateCore;
  /** Set when the state changed with this outcome. */
  changed: { from: HealthState; fromSince: string } | null;
}

export function countStreaks(s: HealthStreaks, outcome: ProbeOutcome): HealthStreaks {
  switch (outcome) {
    case 'fail': return { fail: s.fail + 1, ok: 0, notOk: s.notOk + 1, notFail: 0 };
    case 'degraded': return { fail: 0, ok: 0, notOk: s.notOk + 1, notFail: s.notFail + 1 };
    case 'ok': return { fail: 0, ok: s.ok + 1, notOk: 0, notFail: s.notFail + 1 };
  }
}

const OUTCOME_STATE: Record<ProbeOutcome, HealthState> = { ok: 'up', degraded: 'degraded', fail: 'down' };

/** The state a target reaches after `outcome`, given what it was. Pure. */
export function step(core: StateCore, outcome: ProbeOutcome, damping: Damping, at: string): Step {
  const streaks = countStreaks(core.streaks, outcome);
  const n = damping.failuresBeforeDown;
  const m = damping.successesBeforeUp;
  let next: HealthState = core.state;
  switch (core.state) {
    case 'unknown':
      next = OUTCOME_STATE[outcome];
      break;
    case 'up':
      if (streaks.fail >= n) next = 'down';
      else if (streaks.notOk >= n) next = 'degraded';
      break;
    case 'degraded':
      if (streaks.fail >= n) next = 'down';
      else if (streaks.ok >= m) next = 'up';
      break;
    case 'down':
      if (streaks.ok >= m) next = 'up';
      else if (streaks.notFail >= m) next = 'degraded';
      break;
  }
  if (next === core.state) return { core: { ...core, streaks }, changed: null };
  return { core: { state: next, since: at, streaks }, changed: { from: core.state, fromSince: core.since } };
}

/** Whether a change is under way (outcomes disagree with the state): the target is then probed at `retryIntervalMs`. */
export function isPending(core: StateCore): boolean {
  const s = core.streaks;
  switch (core.state) {
    case 'unknown': return false;
    case 'up': return s.notOk > 0;
    case 'degraded': return s.fail > 0 || s.ok > 0;
    case 'down': return s.notFail > 0;
  }
}
