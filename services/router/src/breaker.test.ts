import { describe, expect, it } from 'vitest';
import { CircuitBreaker, type CircuitTransition } from './breaker.ts';

const settings = { consecutiveFailures: 3, failureRatio: 0.5, minRequests: 6, windowMs: 10_000, openMs: 1000 };

function breaker() {
  let now = 0;
  const transitions: CircuitTransition[] = [];
  const b = new CircuitBreaker('vllm', settings, (t) => transitions.push(t), () => now);
  return { b, transitions, advance: (ms: number) => { now += ms; } };
}

describe('CircuitBreaker', () => {
  it('opens after consecutive failures, lets one probe through after the open period, closes on its success', () => {
    const { b, transitions, advance } = breaker();
    b.failure('backend_error');
    b.failure('backend_error');
    expect(b.state).toBe('closed');
    b.failure('timeout');
    expect(b.state).toBe('open');
    expect(b.allow()).toBe(false);
    expect(b.retryInMs()).toBe(1000);
    advance(1000);
    expect(b.state).toBe('half-open');
    expect(b.allow()).toBe(true);
    expect(b.allow()).toBe(false); // one probe at a time
    b.success();
    expect(b.state).toBe('closed');
    expect(transitions.map((t) => `${t.previous}>${t.state}`)).toEqual(['closed>open', 'open>half-open', 'half-open>closed']);
    expect(transitions[0]!.reason).toBe('3 consecutive failures (last: timeout)');
  });

  it('a failed probe opens the circuit again', () => {
    const { b, advance } = breaker();
    for (let i = 0; i < 3; i++) b.failure('x');
    advance(1000);
    expect(b.allow()).toBe(true);
    b.failure('backend_unavailable');
    expect(b.state).toBe('open');
    advance(999);
    expect(b.allow()).toBe(false);
    advance(1);
    expect(b.allow()).toBe(true);
  });

  it('opens on a failure ratio over the window, not on scattered failures', () => {
    const { b } = breaker();
    // ok, fail, ok, fail, ok: never 3 in a row, under the minimum count.
    for (const ok of [true, false, true, false, true]) { if (ok) b.success(); else b.failure('x'); }
    expect(b.state).toBe('closed');
    b.failure('x'); // 3 of 6 failed = 0.5
    expect(b.state).toBe('open');
    // Old outcomes leave the window.
    const fresh = breaker();
    for (const ok of [false, true, false, true, false]) { if (ok) fresh.b.success(); else fresh.b.failure('x'); }
    fresh.advance(20_000);
    fresh.b.failure('x');
    expect(fresh.b.state).toBe('closed');
  });

  it('release frees a half-open probe that ended without a verdict', () => {
    const { b, advance } = breaker();
    for (let i = 0; i < 3; i++) b.failure('x');
    advance(1000);
    expect(b.allow()).toBe(true);
    b.release();
    expect(b.allow()).toBe(true);
  });
});
