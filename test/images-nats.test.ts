import { Objm } from '@nats-io/obj';
import { describe, expect, it } from 'vitest';
import { pngSize } from '@homelab/simulators';
import { followEvents, natsRequest, startImageStack, waitForImageModels } from './helpers/images-stack.ts';

/*
 * The NATS API of image generation as a script uses it (docs/images.md): submit, follow by events,
 * read the record and the file; generate and wait; several jobs in order; a worker killed and
 * ComfyUI restarted mid-job; cancels.
 */

interface SubmitReply { id: string; state: string; model: string; backend: string; position?: number; submittedAt: string }
interface JobRecord { id: string; state: string; images?: { id: string; width?: number; height?: number; contentType: string }[]; error?: { code: string; status: number; message: string; reason: string }; attempts: number; progress?: { step: number; of: number } }

describe('images over NATS', () => {
  it('a script submits a job and follows it by its events to the image in the object store', async () => {
    await using lab = await startImageStack();
    await waitForImageModels(lab.script);
    const reply = await natsRequest<SubmitReply>(lab.script, 'images.jobs.submit', { model: 'sdxl', prompt: 'a lighthouse at dusk', size: '96x64', steps: 5 });
    expect(reply).toMatchObject({ id: expect.stringMatching(/^imgjob_/), state: 'queued', model: 'sdxl', backend: 'comfyui', position: 0 });
    const follow = await followEvents(lab.script, reply.id, new Date(Date.parse(reply.submittedAt) - 1000));
    const events = await follow.until((e) => e.some((x) => x.kind === 'completed' || x.kind === 'failed'));
    await follow.stop();
    expect(events.map((e) => e.kind).filter((k) => k !== 'progress')).toEqual(['submitted', 'started', 'completed']);
    const progress = events.filter((e) => e.kind === 'progress').map((e) => e.data);
    expect(progress.map((p) => p['step'])).toEqual([1, 2, 3, 4, 5]);
    expect(progress.at(-1)).toMatchObject({ jobId: reply.id, step: 5, of: 5, percent: 100, node: '3', nodeType: 'KSampler' });
    const completed = events.at(-1)!.data as { images: { id: string; width: number; height: number }[]; attempts: number; steps: number };
    expect(completed).toMatchObject({ attempts: 1, steps: 5, images: [{ id: expect.stringMatching(/^img_/), width: 96, height: 64, contentType: 'image/png' }] });
    // Events never carry the prompt.
    expect(JSON.stringify(events)).not.toContain('lighthouse');

    const status = await natsRequest<JobRecord>(lab.script, `images.jobs.${reply.id}.status`, undefined);
    expect(status).toMatchObject({ id: reply.id, state: 'completed', attempts: 1, images: completed.images });
    const store = await new Objm(lab.script).open('images');
    const png = await store.getBlob(completed.images[0]!.id);
    expect(pngSize(png!)).toEqual({ width: 96, height: 64 });
  });

  it('images.generate waits and answers with the image, or with a clear error', async () => {
    await using lab = await startImageStack();
    await waitForImageModels(lab.script);
    const result = await natsRequest<{ id: string; data: { b64_json?: string; file_id: string; width: number }[] }>(lab.script, 'images.generate', { model: 'sdxl', prompt: 'a red kite', size: '64x64', n: 2, response_format: 'b64_json' }, 20_000);
    expect(result.data).toHaveLength(2);
    for (const d of result.data) expect(pngSize(Buffer.from(d.b64_json!, 'base64'))).toEqual({ width: 64, height: 64 });

    const refused = await natsRequest(lab.script, 'images.generate', { model: 'sdxl', prompt: 'x', steps: 15000 }, 20_000).catch((e: Error & { status: number; body: unknown }) => e);
    expect((refused as { status: number }).status).toBe(400);
    expect((refused as { body: { error: { message: string; code: string } } }).body.error).toMatchObject({ code: 'invalid_request', message: expect.stringContaining('KSampler (node 3): steps: Value 15000 bigger than max of 10000') });
    const unknown = await natsRequest(lab.script, 'images.jobs.submit', { model: 'nope', prompt: 'x' }).catch((e: Error & { status: number }) => e);
    expect((unknown as { status: number }).status).toBe(404);
  });
});
