import { describe, expect, it } from 'vitest';
import { ConcurrencyLimiter } from './limiter.ts';

describe('ConcurrencyLimiter', () => {
  it('gives out at most max slots; a release hands the slot to the first waiter', async () => {
    const l = new ConcurrencyLimiter(2, 2);
    expect(l.tryAcquire()).toBe(true);
    expect(l.tryAcquire()).toBe(true);
    expect(l.tryAcquire()).toBe(false);
    const order: string[] = [];
    const a = l.acquire(1000).then((ok) => order.push(`a:${ok}`));
    const b = l.acquire(1000).then((ok) => order.push(`b:${ok}`));
    expect(await l.acquire(1000)).toBe(false); // the queue is full: told at once
    expect(l.queued).toBe(2);
    l.release();
    l.release();
    await Promise.all([a, b]);
    expect(order).toEqual(['a:true', 'b:true']);
    expect(l.active).toBe(2);
  });

  it('a wait ends after its timeout, or when aborted, without a slot', async () => {
    const l = new ConcurrencyLimiter(1, 5);
    l.tryAcquire();
    expect(await l.acquire(30)).toBe(false);
    const controller = new AbortController();
    const waiting = l.acquire(5000, controller.signal);
    controller.abort();
    expect(await waiting).toBe(false);
    expect(l.queued).toBe(0);
  });

  it('0 means no limit; releasing more than acquired is a bug and says so', () => {
    const l = new ConcurrencyLimiter(0, 0);
    for (let i = 0; i < 1000; i++) expect(l.tryAcquire()).toBe(true);
    const strict = new ConcurrencyLimiter(1, 0);
    expect(() => strict.release()).toThrow(/released twice/);
  });
});
