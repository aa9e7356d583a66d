import { describe, expect, it } from 'vitest';
import { GatewayError, type ImageJobRecord } from '@homelab/bus';
import { ImageJobError } from './executor.ts';
import { completedRecord, endedRecord, jobFailure } from './lifecycle.ts';

const record = (extra: Partial<ImageJobRecord> = {}): ImageJobRecord => ({
  id: 'imgjob_1', state: 'running', kind: 'generate', backend: 'comfyui', model: 'sdxl', requestedModel: 'sdxl', routeReason: 'model', n: 1,
  requestId: 'req_1', submittedAt: '2026-01-01T00:00:00.000Z', attempts: 1, responseFormat: 'b64_json', outputFormat: 'png', ...extra,
});
const refs = [{ id: 'img_aaaaaaaaaaaaaaaaaaaa', contentType: 'image/png', bytes: 3, width: 64, height: 64 }];
const at = '2026-01-01T00:01:00.000Z';

describe('a job\'s failure as recorded', () => {
  it('an ImageJobError keeps its reason and param', () => {
    const { error, entry } = jobFailure(new ImageJobError('invalid_request', 'send a mask', 'validation', { param: 'mask', node: '12', nodeType: 'LoadImage' }));
    expect(error.code).toBe('invalid_request');
    expect(entry).toEqual({ code: 'invalid_request', status: 400, message: 'send a mask', reason: 'validation', param: 'mask' });
  });

  it('another GatewayError counts under its code; anything else is internal, without its message', () => {
    expect(jobFailure(new GatewayError('backend_unavailable', 'ComfyUI is down')).entry).toEqual({ code: 'backend_unavailable', status: 503, message: 'ComfyUI is down', reason: 'backend_unavailable' });
    const { error, entry } = jobFailure(new TypeError("Cannot read properties of undefined (reading 'outputs')"));
    expect(error.code).toBe('internal_error');
    expect(entry).toEqual({ code: 'internal_error', status: 500, message: 'internal error', reason: 'internal' });
  });
});

describe('the record changes that end a job', () => {
  it('completed: only from running, with its images, a full progress when steps are known, usage and cost', () => {
    const done = completedRecord(refs, at, 20, { usage: { inputTokens: 5, outputTokens: 50 }, costUsd: 0.04 })(record());
    expect(done).toEqual(record({
      state: 'completed', images: refs, finishedAt: at, progress: { step: 20, of: 20, percent: 100 }, usage: { inputTokens: 5, outputTokens: 50 }, costUsd: 0.04,
    }));
    const noSteps = completedRecord(refs, at, undefined, {})(record());
    expect(noSteps).not.toHaveProperty('progress');
    expect(noSteps).not.toHaveProperty('usage');
    for (const state of ['queued', 'failed', 'cancelled', 'completed'] as const) expect(completedRecord(refs, at, 20, {})(record({ state })), state).toBeUndefined();
  });

  it('failed or cancelled: from queued or running; a job already ended keeps its first end', () => {
    const entry = { code: 'backend_error', status: 502, message: 'ComfyUI failed', reason: 'node_error' };
    expect(endedRecord({ state: 'failed', error: entry, finishedAt: at })(record({ state: 'queued' }))).toEqual(record({ state: 'failed', error: entry, finishedAt: at }));
    expect(endedRecord({ state: 'cancelled', finishedAt: at })(record())).toEqual(record({ state: 'cancelled', finishedAt: at }));
    for (const state of ['completed', 'failed', 'cancelled'] as const) {
      expect(endedRecord({ state: 'cancelled', finishedAt: at })(record({ state })), state).toBeUndefined();
      expect(endedRecord({ state: 'failed', error: entry, finishedAt: at })(record({ state })), state).toBeUndefined();
    }
  });
});
