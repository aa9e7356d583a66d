import { GatewayError } from '@homelab/bus';

/**
 * Concurrency limit of one backend (in this router replica) with a bounded FIFO wait queue. A
 * request either gets a slot, waits for one (bounded by the queue length and a timeout), or is
 * told the backend is saturated, and the router offers it to the next candidate.
 */
export class ConcurrencyLimiter {
  readonly #max: number;
  readonly #maxQueue: number;
  #active = 0;
  readonly #queue: { grant: () => void; timer: NodeJS.Timeout }[] = [];

  constructor(max: number, maxQueue: number) {
    this.#max = max;
    this.#maxQueue = maxQueue;
  }

  get active(): number { return this.#active; }
  get queued(): number { return this.#queue.length; }

  /** Takes a slot now if one is free; `max` 0 means no limit. */
  tryAcquire(): boolean {
    if (this.#max > 0 && this.#active >= this.#max) return false;
    this.#active++;
    return true;
  }

  /**
   * Waits for a slot in the queue. Resolves true with the slot, false when the queue is full or the
   * wait timed out (the caller moves on), never waiting longer than `timeoutMs`.
   */
  acquire(timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    if (this.tryAcquire()) return Promise.resolve(true);
    if (this.#queue.length >= this.#maxQueue) return Promise.resolve(false);
    return new Promise((resolve) => {
      const entry = {
        grant: () => { clearTimeout(entry.timer); signal?.removeEventListener('abort', onAbort); resolve(true); },
        timer: setTimeout(() => { remove(); resolve(false); }, timeoutMs),
      };
      const remove = (): void => {
        const i = this.#queue.indexOf(entry);
        if (i >= 0) this.#queue.splice(i, 1);
      };
      const onAbort = (): void => { clearTimeout(entry.timer); remove(); resolve(false); };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#queue.push(entry);
    });
  }

  /** Frees a slot: the next waiter, if any, takes it over. */
  release(): void {
    const next = this.#queue.shift();
    if (next) next.grant();
    else if (this.#active > 0) this.#active--;
    else throw new GatewayError('internal_error', 'concurrency slot released twice');
  }
}
