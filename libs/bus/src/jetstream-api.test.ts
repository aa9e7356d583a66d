import { describe, expect, it, vi } from 'vitest';
import { JetStreamApiError } from '@nats-io/jetstream';
import { retryJetStreamApi } from './jetstream-api.ts';

function apiError(code: number, description: string): JetStreamApiError {
  return new JetStreamApiError({ code, err_code: 10000, description });
}

function timeout(): Error {
  return Object.assign(new Error('timeout'), { name: 'TimeoutError' });
}

/** A call that fails with each of `errors` in turn, then returns 'ok'. */
function failingThen(...errors: Error[]): () => Promise<string> {
  return vi.fn(() => {
    const err = errors.shift();
    return err ? Promise.reject(err) : Promise.resolve('ok');
  });
}

describe('retryJetStreamApi', () => {
  it('retries timeouts and "temporarily unavailable" until the call is answered', async () => {
    const call = failingThen(timeout(), apiError(503, 'JetStream system temporarily unavailable'), new Error('503 no responders'));
    await expect(retryJetStreamApi(call)).resolves.toBe('ok');
    expect(call).toHaveBeenCalledTimes(4);
  });

  it('gives a final answer at once: not found, a refusal', async () => {
    const call = failingThen(apiError(404, 'stream not found'));
    await expect(retryJetStreamApi(call)).rejects.toThrow('stream not found');
    expect(call).toHaveBeenCalledTimes(1);
  });

  it('retries "no suitable peers" only when placing a replicated stream or bucket', async () => {
    const refusal = (): JetStreamApiError => apiError(500, 'insufficient resources: no suitable peers for placement');
    await expect(retryJetStreamApi(failingThen(refusal()))).rejects.toThrow('no suitable peers');
    await expect(retryJetStreamApi(failingThen(refusal()), { placement: true })).resolves.toBe('ok');
  });

  it('stops retrying when its budget is spent, with the last error', async () => {
    const call = vi.fn(() => Promise.reject(timeout()));
    await expect(retryJetStreamApi(call, { budgetMs: 100 })).rejects.toThrow('timeout');
    expect(call.mock.calls.length).toBeGreaterThanOrEqual(1);
  });
});
