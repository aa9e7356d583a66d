import { afterEach, describe, expect, it } from 'vitest';
import { eventValidator } from '@homelab/bus';
import { eventHandlers } from './consumers.ts';
import { ImageAttr as A, ImageDurationBuckets, ImageMetric } from './semconv.ts';
import { metricsHarness, type MetricsHarness } from './testkit.ts';

let h: MetricsHarness;
afterEach(async () => { await h?.shutdown(); });

const at = '2026-12-03T10:00:00.000Z';
const base = { jobId: 'imgjob_abcdefgh', model: 'sdxl', backend: 'comfyui' as const, at };
/** Each fixture is checked against its subject's real schema: the tests feed what the workers publish. */
function valid<T>(kind: string, payload: T): T {
  eventValidator(`images.${kind}.imgjob_abcdefgh`)!.parse(payload);
  return payload;
}

describe('image metrics', () => {
  it('counts jobs by outcome, with queue wait, duration, steps per second, images and failures by reason', async () => {
    h = metricsHarness();
    const handlers = eventHandlers(h.metrics);
    handlers.imageSubmitted!(valid('submitted', { ...base, requestedModel: 'image', kind: 'generate', n: 2, requestId: 'req_1', routeReason: 'alias:image > comfyui' }));
    handlers.imageStarted!(valid('started', { ...base, attempt: 1, queueWaitMs: 1500 }));
    handlers.imageStarted!(valid('started', { ...base, attempt: 2, queueWaitMs: 40_000 }));
    handlers.imageProgress!(valid('progress', { ...base, step: 3, of: 20, percent: 15, node: '3', nodeType: 'KSampler' }));
    handlers.imageCompleted!(valid('completed', {
      ...base, requestedModel: 'image', attempts: 2, queueWaitMs: 1500, durationMs: 8000, steps: 20, stepsPerSecond: 2.5,
      images: [{ id: 'img_a', contentType: 'image/png', bytes: 10 }, { id: 'img_b', contentType: 'image/png', bytes: 11 }],
    }));
    handlers.imageFailed!(valid('failed', { ...base, attempts: 1, error: { code: 'backend_error', status: 507, message: 'ComfyUI ran out of GPU memory', reason: 'out_of_memory' } }));
    handlers.imageCancelled!(valid('cancelled', { ...base, phase: 'queued' }));
    handlers.imageCompleted!(valid('completed', { ...base, backend: 'openai', model: 'gpt-image-1', requestedModel: 'gpt-image-1', attempts: 1, queueWaitMs: 5, durationMs: 3000, costUsd: 0.04, images: [{ id: 'img_c', contentType: 'image/png', bytes: 9 }] }));

    const labels = { [A.backend]: 'comfyui', [A.model]: 'sdxl' };
    expect((await h.point(ImageMetric.submitted, labels)).value).toBe(1);
    expect((await h.point(ImageMetric.jobs, { ...labels, [A.outcome]: 'completed' })).value).toBe(1);
    expect((await h.point(ImageMetric.jobs, { ...labels, [A.outcome]: 'cancelled', [A.phase]: 'queued' })).value).toBe(1);
    expect((await h.point(ImageMetric.failures, { ...labels, [A.reason]: 'out_of_memory' })).value).toBe(1);
    // The takeover's start is not a second queue wait.
    const wait = await h.point(ImageMetric.queueWait, labels);
    expect(wait).toMatchObject({ count: 1, sum: 1.5 });
    expect(wait.buckets!.boundaries).toEqual(ImageDurationBuckets);
    expect((await h.point(ImageMetric.takeovers, labels)).value).toBe(1);
    expect(await h.point(ImageMetric.duration, labels)).toMatchObject({ count: 1, sum: 8 });
    expect(await h.point(ImageMetric.stepsPerSecond, labels)).toMatchObject({ count: 1, sum: 2.5 });
    expect((await h.point(ImageMetric.images, labels)).value).toBe(2);
    expect((await h.point(ImageMetric.cost, { [A.backend]: 'openai', [A.model]: 'gpt-image-1' })).value).toBeCloseTo(0.04);
    // No label holds a job id.
    const all = await h.collect();
    expect(JSON.stringify([...all.values()].map((m) => m.dataPoints.map((d) => d.attributes)))).not.toContain('imgjob_');
  });

  it('the work queue\'s depth per backend', async () => {
    h = metricsHarness();
    h.metrics.images.recordQueue('comfyui', 3, 1);
    expect((await h.point(ImageMetric.queued, { [A.backend]: 'comfyui' })).value).toBe(3);
    expect((await h.point(ImageMetric.running, { [A.backend]: 'comfyui' })).value).toBe(1);
  });
});
