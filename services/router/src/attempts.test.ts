import { describe, expect, it } from 'vitest';
import { GatewayError } from '@homelab/bus';
import { parseConfig, type Provider } from '@homelab/config';
import { placeRequest, type AttemptResult, type AttemptSettings, type WorkerLink } from './attempts.ts';
import { CircuitBreaker } from './breaker.ts';
import { ConcurrencyLimiter } from './limiter.ts';
import type { Candidate } from './resolve.ts';

const config = parseConfig(`
nodes:
  ai-node:
    address: 127.0.0.1
    services: { vllm: { kind: vllm, port: 8000 }, ollama: { kind: ollama, port: 11434 } }
inference:
  vllm: { service: ai-node/vllm, maxConcurrent: 1, maxQueue: 0, whenSaturated: spill }
  ollama: { service: ai-node/ollama }
routing: { retry: { attemptsPerBackend: 2, backoffMs: 100, maxRetryAfterMs: 5000 }, breaker: { consecutiveFailures: 3 } }
`, 'lab.yaml', {});

const vllm: Candidate = { provider: 'vllm', model: 'Qwen' };
const ollama: Candidate = { provider: 'ollama', model: 'qwen2.5:7b' };

/** A fake worker side: scripted results per attempt, and a record of what the loop did. */
function fakeLink(results: (AttemptResult | ((candidate: Candidate) => AttemptResult))[]): WorkerLink & { tried: string[]; abandoned: number[]; cancel(): void } {
  let cancelled = false;
  const link = {
    tried: [] as string[], abandoned: [] as number[],
    get cancelled() { return cancelled; },
    cancel() { cancelled = true; },
    async attempt(candidate: Candidate, attempt: number) {
      link.tried.push(`${attempt}:${candidate.provider}`);
      const next = results.shift() ?? { kind: 'failed', error: new GatewayError('backend_error', 'no script left') };
      return typeof next === 'function' ? next(candidate) : next;
    },
    abandon(attempt: number) { link.abandoned.push(attempt); },
  };
  return link;
}

function settings(now = 0): AttemptSettings & { slept: number[] } {
  const slept: number[] = [];
  const breakers = new Map<Provider, CircuitBreaker>([['vllm', new CircuitBreaker('vllm', config.routing.breaker, () => {})], ['ollama', new CircuitBreaker('ollama', config.routing.breaker, () => {})]]);
  const limiters = new Map<Provider, ConcurrencyLimiter>([['vllm', new ConcurrencyLimiter(1, 0)], ['ollama', new ConcurrencyLimiter(4, 4)]]);
  return {
    config, gates: { breakers, limiters, coolingUntil: new Map() }, now: () => now, random: () => 1,
    sleep: async (ms) => { slept.push(ms); }, slept,
  };
}

const answered = (): AttemptResult => ({ kind: 'answered', finished: Promise.resolve() });
const failed = (code: ConstructorParameters<typeof GatewayError>[0], options: { retryAfterMs?: number } = {}): AttemptResult => ({ kind: 'failed', error: new GatewayError(code, code, options) });

describe('placeRequest', () => {
  it('the first candidate that answers serves; the route says how it got there', async () => {
    const link = fakeLink([failed('backend_error'), failed('backend_error'), answered()]);
    const s = settings();
    const route = ['alias:smart'];
    const placement = await placeRequest([vllm, ollama], route, link, s, 'smart');
    expect(placement).toMatchObject({ outcome: 'answered', attempts: 3, candidate: ollama, reason: 'alias:smart > vllm backend_error > vllm backend_error > ollama' });
    expect(link.tried).toEqual(['1:vllm', '2:vllm', '3:ollama']);
    expect(s.slept).toEqual([100]);
  });

  it('a bad request stops at once: no retry, no other backend, no mark on the circuit', async () => {
    const link = fakeLink([failed('invalid_request')]);
    const s = settings();
    expect(await placeRequest([vllm, ollama], [], link, s, 'smart')).toMatchObject({ outcome: 'failed', attempts: 1, error: { code: 'invalid_request' } });
    expect(s.gates.breakers.get('vllm')!.state).toBe('closed');
  });

  it('a first-token timeout abandons that attempt upstream before the next one', async () => {
    const link = fakeLink([failed('timeout'), failed('timeout'), answered()]);
    const placement = await placeRequest([vllm, ollama], [], link, settings(), 'smart');
    expect(placement.outcome).toBe('answered');
    expect(link.abandoned).toEqual([1, 2]);
  });

  it('a short Retry-After is waited out; a long one moves on and cools the backend for other requests', async () => {
    const short = settings();
    await placeRequest([vllm], [], fakeLink([failed('rate_limited', { retryAfterMs: 1500 }), answered()]), short, 'm');
    expect(short.slept).toEqual([1500]);
    const long = settings(1000);
    const route: string[] = [];
    const placement = await placeRequest([vllm, ollama], route, fakeLink([failed('rate_limited', { retryAfterMs: 60_000 }), answered()]), long, 'm');
    expect(placement).toMatchObject({ outcome: 'answered', candidate: ollama });
    expect(long.gates.coolingUntil.get('vllm')).toBe(61_000);
    const next = fakeLink([answered()]);
    await placeRequest([vllm, ollama], route, next, long, 'm');
    expect(next.tried).toEqual(['1:ollama']);
  });

  it('no worker for a backend moves on without retrying it', async () => {
    const link = fakeLink([failed('no_backend'), answered()]);
    expect(await placeRequest([vllm, ollama], [], link, settings(), 'm')).toMatchObject({ outcome: 'answered', candidate: ollama });
    expect(link.tried).toEqual(['1:vllm', '2:ollama']);
  });

  it('a backend that cannot do what is asked (unsupported) moves on, no retry, no mark on the circuit; the last refusal reaches the client', async () => {
    const link = fakeLink([failed('unsupported'), answered()]);
    const s = settings();
    const route = ['alias:code'];
    expect(await placeRequest([vllm, ollama], route, link, s, 'code')).toMatchObject({ outcome: 'answered', candidate: ollama, reason: 'alias:code > vllm unsupported > ollama' });
    expect(link.tried).toEqual(['1:vllm', '2:ollama']);
    expect(s.slept).toEqual([]);
    expect(s.gates.breakers.get('vllm')!.state).toBe('closed');

    const nowhere = fakeLink([failed('unsupported'), failed('unsupported')]);
    expect(await placeRequest([vllm, ollama], [], nowhere, settings(), 'code')).toMatchObject({ outcome: 'failed', error: { code: 'unsupported', status: 400, message: 'unsupported' } });
  });

  it('a cancelled requester stops the loop and frees the slot', async () => {
    const s = settings();
    const link = fakeLink([failed('backend_error')]);
    link.cancel();
    expect(await placeRequest([vllm], [], link, s, 'm')).toEqual({ outcome: 'cancelled', attempts: 0 });
    expect(s.gates.limiters.get('vllm')!.active).toBe(0);
    expect(await placeRequest([vllm], [], fakeLink([failed('cancelled')]), s, 'm')).toEqual({ outcome: 'cancelled', attempts: 1 });
  });

  it('a saturated backend spills to the next; all saturated is 429 saturated', async () => {
    const s = settings();
    s.gates.limiters.get('vllm')!.tryAcquire();
    const route: string[] = [];
    expect(await placeRequest([vllm, ollama], route, fakeLink([answered()]), s, 'm')).toMatchObject({ outcome: 'answered', candidate: ollama });
    expect(route).toEqual(['vllm saturated']);
    expect(await placeRequest([vllm], [], fakeLink([]), s, 'm')).toMatchObject({ outcome: 'failed', error: { code: 'saturated', status: 429, retryAfterMs: 1000 } });
  });

  it('failures open the circuit; an open circuit is skipped', async () => {
    const s = settings();
    await placeRequest([vllm], [], fakeLink([failed('backend_unavailable'), failed('backend_unavailable')]), s, 'm');
    await placeRequest([vllm], [], fakeLink([failed('backend_unavailable')]), s, 'm');
    expect(s.gates.breakers.get('vllm')!.state).toBe('open');
    const route: string[] = [];
    await placeRequest([vllm, ollama], route, fakeLink([answered()]), s, 'm');
    expect(route).toEqual(['vllm circuit open']);
  });

  it('the last error says how hard the router tried; the slot is held until the answer is over', async () => {
    const placement = await placeRequest([vllm, ollama], [], fakeLink([failed('backend_error'), failed('backend_error'), failed('backend_error'), failed('backend_error')]), settings(), 'm');
    expect(placement).toMatchObject({ outcome: 'failed', attempts: 4, error: { code: 'backend_error', message: 'backend_error (tried 4 times on 2 backends)' } });
    const s = settings();
    let finish!: () => void;
    const finished = new Promise<void>((r) => { finish = r; });
    await placeRequest([vllm], [], fakeLink([{ kind: 'answered', finished }]), s, 'm');
    expect(s.gates.limiters.get('vllm')!.active).toBe(1);
    finish();
    await finished;
    await Promise.resolve();
    expect(s.gates.limiters.get('vllm')!.active).toBe(0);
  });
});
