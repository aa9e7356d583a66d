import { describe, expect, it } from 'vitest';
import type { ProbeOutcome } from '@homelab/bus';
import { ZERO_STREAKS, isPending, step, type StateCore } from './state.ts';

const damping = { failuresBeforeDown: 3, successesBeforeUp: 2 };

/** Runs outcomes through the machine; returns the state after each, and the transitions. */
function run(start: StateCore['state'], outcomes: ProbeOutcome[], d = damping): { states: string[]; changes: string[]; core: StateCore } {
  let core: StateCore = { state: start, since: 't0', streaks: { ...ZERO_STREAKS } };
  const states: string[] = [];
  const changes: string[] = [];
  outcomes.forEach((o, i) => {
    const s = step(core, o, d, `t${i + 1}`);
    if (s.changed) changes.push(`${s.changed.from}>${s.core.state}@t${i + 1}`);
    core = s.core;
    states.push(core.state);
  });
  return { states, changes, core };
}

describe('state machine with damping', () => {
  it('decides at once from unknown', () => {
    expect(run('unknown', ['ok']).changes).toEqual(['unknown>up@t1']);
    expect(run('unknown', ['fail']).changes).toEqual(['unknown>down@t1']);
    expect(run('unknown', ['degraded']).changes).toEqual(['unknown>degraded@t1']);
  });

  it('needs N consecutive failures before down', () => {
    const r = run('up', ['fail', 'fail', 'fail', 'fail']);
    expect(r.states).toEqual(['up', 'up', 'down', 'down']);
    expect(r.changes).toEqual(['up>down@t3']);
    expect(r.core.since).toBe('t3');
  });

  it('a success resets the failure count: a flapping target stays up', () => {
    const r = run('up', ['fail', 'fail', 'ok', 'fail', 'fail', 'ok', 'fail', 'ok']);
    expect(r.changes).toEqual([]);
    expect(r.core.state).toBe('up');
  });

  it('needs M consecutive successes before up again; flapping keeps it down', () => {
    expect(run('down', ['ok', 'ok']).changes).toEqual(['down>up@t2']);
    expect(run('down', ['ok', 'fail', 'ok', 'fail', 'ok']).changes).toEqual([]);
  });

  it('degrades after N not-ok results, and recovers after M ok', () => {
    const r = run('up', ['degraded', 'fail', 'degraded', 'ok', 'ok']);
    expect(r.changes).toEqual(['up>degraded@t3', 'degraded>up@t5']);
  });

  it('goes from degraded to down after N failures', () => {
    expect(run('degraded', ['fail', 'fail', 'fail']).changes).toEqual(['degraded>down@t3']);
  });

  it('comes back from down through degraded when answers are slow', () => {
    const r = run('down', ['degraded', 'degraded', 'ok', 'ok']);
    expect(r.changes).toEqual(['down>degraded@t2', 'degraded>up@t4']);
  });

  it('damping of 1 follows every result', () => {
    const r = run('up', ['fail', 'ok', 'fail'], { failuresBeforeDown: 1, successesBeforeUp: 1 });
    expect(r.changes).toEqual(['up>down@t1', 'down>up@t2', 'up>down@t3']);
  });

  it('reports a pending change (probe at the retry interval)', () => {
    const c = (state: StateCore['state'], outcomes: ProbeOutcome[]) => isPending(run(state, outcomes).core);
    expect(c('up', ['ok'])).toBe(false);
    expect(c('up', ['fail'])).toBe(true);
    expect(c('down', ['fail'])).toBe(false);
    expect(c('down', ['ok'])).toBe(true);
    expect(c('unknown', [])).toBe(false);
  });
});
