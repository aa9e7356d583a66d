import { describe, expect, it } from 'vitest';
import { AckPolicy, DeliverPolicy } from '@nats-io/jetstream';
import type { ImageJobRecord } from '@homelab/bus';
import { admitJob, cancelsOnlyIfQueued, heartbeatMs, imageJobsConsumer, startedRecord } from './delivery.ts';

const record = (extra: Partial<ImageJobRecord> = {}): ImageJobRecord => ({
  id: 'imgjob_1', state: 'queued', kind: 'generate', backend: 'comfyui', model: 'sdxl', requestedModel: 'sdxl', routeReason: 'model', n: 1,
  requestId: 'req_1', submittedAt: '2026-01-01T00:00:00.000Z', attempts: 0, responseFormat: 'b64_json', outputFormat: 'png', ...extra,
});

describe('whether a delivered job may start here', () => {
  it('starts a queued job, and a running one (a takeover of a worker that died)', () => {
    expect(admitJob(record(), 1, 3)).toBe('start');
    expect(admitJob(record({ state: 'running', attempts: 1 }), 2, 3)).toBe('start');
  });

  it('drops a job without a record and one already ended, whatever else it says', () => {
    expect(admitJob(undefined, 1, 3)).toBe('no-record');
    for (const state of ['completed', 'failed', 'cancelled'] as const) expect(admitJob(record({ state, cancelRequested: true }), 9, 3), state).toBe('ended');
  });

  it('a cancel that came first ends it as cancelled, even past the last attempt', () => {
    expect(admitJob(record({ cancelRequested: true }), 9, 3)).toBe('cancel');
  });

  it('a job delivered more than maxAttempts times fails', () => {
    expect(admitJob(record({ state: 'running' }), 3, 3)).toBe('start');
    expect(admitJob(record({ state: 'running' }), 4, 3)).toBe('too-many-attempts');
  });
});

describe('the record change that starts a job', () => {
  const now = new Date('2026-01-01T00:00:05.000Z');

  it('queued → running, with the attempt and the start time', () => {
    expect(startedRecord(1, now)(record())).toEqual(record({ state: 'running', attempts: 1, startedAt: '2026-01-01T00:00:05.000Z' }));
  });

  it('a takeover keeps the first start time (the queue wait is measured once)', () => {
    const taken = startedRecord(2, now)(record({ state: 'running', attempts: 1, startedAt: '2026-01-01T00:00:01.000Z' }));
    expect(taken).toMatchObject({ state: 'running', attempts: 2, startedAt: '2026-01-01T00:00:01.000Z' });
  });

  it('changes nothing once a cancel was asked or the job ended', () => {
    expect(startedRecord(1, now)(record({ cancelRequested: true }))).toBeUndefined();
    for (const state of ['completed', 'failed', 'cancelled'] as const) expect(startedRecord(1, now)(record({ state })), state).toBeUndefined();
  });
});

describe('a cancel\'s body', () => {
  it('only `{"ifQueued": true}` spares a running job; empty, null or odd bodies are plain cancels', () => {
    const body = (text: string): Uint8Array => Buffer.from(text);
    expect(cancelsOnlyIfQueued(body('{"ifQueued":true}'))).toBe(true);
    expect(cancelsOnlyIfQueued(body('{"ifQueued":false}'))).toBe(false);
    expect(cancelsOnlyIfQueued(body('{"ifQueued":"yes"}'))).toBe(false);
    expect(cancelsOnlyIfQueued(new Uint8Array())).toBe(false);
    expect(cancelsOnlyIfQueued(body('null'))).toBe(false);
    expect(cancelsOnlyIfQueued(body('{"ifQueued":tru'))).toBe(false);
  });
});

describe('the work queue\'s consumer', () => {
  it('one durable per backend, max_ack_pending the concurrency, ack wait in nanoseconds, deliveries not capped', () => {
    expect(imageJobsConsumer('comfyui', { ackWaitMs: 30_000, concurrency: 2 })).toEqual({
      durable_name: 'worker-comfyui-images', filter_subject: 'worker.comfyui.images', ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All,
      ack_wait: 30_000_000_000, max_ack_pending: 2, max_deliver: -1,
    });
  });

  it('a running job beats three times per ack wait, at most twice a second', () => {
    expect(heartbeatMs(30_000)).toBe(10_000);
    expect(heartbeatMs(900)).toBe(500);
  });
});
