import type { Logger } from '@homelab/logging';
import { PollAborted, toMediaError, type MediaError } from './errors.ts';
import type { MediaTarget, PollResult } from './targets/types.ts';

export interface PollerOptions {
  target: MediaTarget;
  log: Logger;
  /** Applies a successful poll (snapshots, transitions). A throw here is logged; the target is not blamed. */
  onResult(result: PollResult, signal: AbortSignal): Promise<void>;
  /** The target failed; the poller goes on at its interval. */
  onError(err: MediaError): Promise<void>;
}

/**
 * Polls one target on its own timer: the next poll starts `intervalMs` after the previous one
 * ended, so a slow target delays only itself, and each request has its own deadline.
 */
export class Poller {
  readonly #options: PollerOptions;
  #timer: NodeJS.Timeout | undefined;
  #controller: AbortController | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;

  constructor(options: PollerOptions) {
    this.#options = options;
  }

  start(delayMs = 0): void {
    this.#schedule(delayMs);
  }

  #schedule(ms: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#running = this.#tick().finally(() => {
        this.#running = undefined;
        this.#schedule(this.#options.target.spec.intervalMs);
      });
    }, ms);
  }

  async #tick(): Promise<void> {
    const { target, log } = this.#options;
    const controller = new AbortController();
    this.#controller = controller;
    let result: PollResult;
    try {
      result = await target.poll(controller.signal);
    } catch (err) {
      if (err instanceof PollAborted || this.#stopped) return;
      await this.#options.onError(toMediaError(err)).catch((e: unknown) => log.warn({ target: target.spec.name, err: (e as Error).message }, 'could not record a target error'));
      return;
    }
    try {
      await this.#options.onResult(result, controller.signal);
    } catch (err) {
      if (err instanceof PollAborted || this.#stopped) return;
      log.warn({ target: target.spec.name, err: (err as Error).message }, 'could not apply a poll (bus unavailable?); the next poll retries');
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#controller?.abort();
    await this.#running;
  }
}
