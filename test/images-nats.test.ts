import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { Objm } from '@nats-io/obj';
import { describe, expect, it } from 'vitest';
import { pngSize } from '@homelab/simulators';
import { startServiceProcess } from '@homelab/testing';
import { readObjectByName } from '@homelab/bus';
import { WORKFLOWS, followEvents, natsRequest, objectStoreConsumers, startImageStack, waitForImageModels } from './helpers/images-stack.ts';
import { sampleSum, startTelemetry, waitFor } from './telemetry-kit.ts';

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
    const png = await readObjectByName(await jetstreamManager(lab.script, { checkAPI: false }), store, completed.images[0]!.id);
    expect(pngSize(png!)).toEqual({ width: 96, height: 64 });
    expect(await objectStoreConsumers(lab.stack)).toEqual([]);
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

  it('a worker whose workflow mapping names a node the file does not have refuses to start, naming the file and the node', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'homelab-bad-workflow-'));
    const file = join(dir, 'bad.json');
    const workflow = JSON.parse(readFileSync(join(WORKFLOWS, 'sdxl-text-to-image.json'), 'utf8')) as Record<string, unknown>;
    delete workflow['7'];
    writeFileSync(file, JSON.stringify(workflow));
    try {
      await using lab = await startImageStack({ services: [], images: { extraModels: `    bad:\n      workflow: ${file}\n      mapping: { prompt: 6.text, negativePrompt: 7.text }\n` } });
      await using worker = await startServiceProcess('worker-comfyui', { nats: lab.stack.nats, waitReady: false, env: { HOMELAB_CONFIG: lab.stack.configFile, COMFYUI_URL: lab.comfy.url } });
      const code = await new Promise((resolve) => worker.proc.once('exit', resolve));
      expect(code).toBe(1);
      const fatal = worker.logs.find((l) => l['level'] === 'fatal')!;
      // The first problem found: the sampler's link to the missing node (the mapping's would come next).
      expect(JSON.stringify(fatal)).toContain(`${file}: image model 'bad': node '3' (KSampler) input 'negative' links to node '7', which is not in the workflow`);
      expect(fatal['msg']).toBe('failed to start');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('image jobs on the work queue', () => {
  it('with concurrency 1, several jobs run one by one in the order they came, each with its progress, none lost', async () => {
    await using lab = await startImageStack();
    await waitForImageModels(lab.script);
    const since = new Date(Date.now() - 1000);
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push((await natsRequest<SubmitReply>(lab.script, 'images.jobs.submit', { model: 'sdxl', prompt: `job ${i}`, steps: 4, seed: i })).id);
    const follow = await followEvents(lab.script, undefined, since);
    const events = await follow.until((e) => ids.every((id) => e.some((x) => x.kind === 'completed' && x.data['jobId'] === id)), 30_000);
    await follow.stop();
    const mine = events.filter((e) => ids.includes(e.data['jobId'] as string));
    // In stream order: each job starts only after the one before it completed, and in submission order.
    const lifecycle = mine.filter((e) => e.kind === 'started' || e.kind === 'completed').map((e) => `${e.kind}:${ids.indexOf(e.data['jobId'] as string)}`);
    expect(lifecycle).toEqual(['started:0', 'completed:0', 'started:1', 'completed:1', 'started:2', 'completed:2', 'started:3', 'completed:3']);
    for (const id of ids) {
      const steps = mine.filter((e) => e.kind === 'progress' && e.data['jobId'] === id).map((e) => e.data['step']);
      expect(steps, id).toEqual([1, 2, 3, 4]);
      expect(mine.filter((e) => e.kind === 'completed' && e.data['jobId'] === id)).toHaveLength(1);
    }
    // ComfyUI saw them one at a time, in the same order.
    expect(lab.comfy.prompts.map((p) => p.clientId)).toEqual(ids);
    expect(lab.comfy.prompts.every((p) => p.status === 'success')).toBe(true);
  }, 60_000);

  it('a worker killed mid-job: the job is taken up again by the next worker and completes once, without a second generation', async () => {
    await using lab = await startImageStack({ comfy: { stepIntervalMs: 40 }, images: { ackWaitMs: 1500 } });
    await waitForImageModels(lab.script);
    const reply = await natsRequest<SubmitReply>(lab.script, 'images.jobs.submit', { model: 'sdxl', prompt: 'a fox', steps: 60 });
    const follow = await followEvents(lab.script, reply.id, new Date(Date.parse(reply.submittedAt) - 1000));
    await follow.until((e) => e.filter((x) => x.kind === 'progress').length >= 3);
    const worker = lab.stack.services.find((s) => s.name === 'worker-comfyui')!;
    await worker.stop('SIGKILL');
    await lab.stack.startService('worker-comfyui');
    const events = await follow.until((e) => e.some((x) => x.kind === 'completed' || x.kind === 'failed'), 30_000);
    await new Promise((r) => setTimeout(r, 500));
    await follow.stop();
    expect(follow.events.filter((e) => e.kind === 'completed')).toHaveLength(1);
    expect(follow.events.filter((e) => e.kind === 'failed')).toHaveLength(0);
    expect(events.filter((e) => e.kind === 'started').map((e) => e.data['attempt'])).toEqual([1, 2]);
    // One prompt at ComfyUI for the job: the second worker followed the first one's prompt to its end.
    expect(lab.comfy.prompts.filter((p) => p.clientId === reply.id).map((p) => p.status)).toEqual(['success']);
    const status = await natsRequest<JobRecord>(lab.script, `images.jobs.${reply.id}.status`, undefined);
    expect(status).toMatchObject({ state: 'completed', attempts: 2 });
    expect(status.images).toHaveLength(1);
  }, 60_000);

  it('ComfyUI restarted mid-job: the lost prompt is submitted again once, then the job fails clearly', async () => {
    await using lab = await startImageStack({ comfy: { stepIntervalMs: 30 }, images: { resubmitLost: 1 } });
    await waitForImageModels(lab.script);
    const reply = await natsRequest<SubmitReply>(lab.script, 'images.jobs.submit', { model: 'sdxl', prompt: 'a boat', steps: 30 });
    const follow = await followEvents(lab.script, reply.id, new Date(Date.parse(reply.submittedAt) - 1000));
    await follow.until((e) => e.filter((x) => x.kind === 'progress').length >= 2);
    await lab.comfy.restart({ downMs: 300 });
    await follow.until((e) => e.some((x) => x.kind === 'completed' || x.kind === 'failed'), 30_000);
    expect(follow.events.filter((e) => e.kind === 'completed')).toHaveLength(1);
    expect(lab.comfy.prompts.filter((p) => p.clientId === reply.id).map((p) => p.status)).toEqual(['lost', 'success']);

    // The second loss of the same job is one too many (images.comfyui.resubmitLost: 1).
    const second = await natsRequest<SubmitReply>(lab.script, 'images.jobs.submit', { model: 'sdxl', prompt: 'a boat', steps: 40 });
    const again = await followEvents(lab.script, second.id, new Date(Date.parse(second.submittedAt) - 1000));
    for (let loss = 1; loss <= 2; loss++) {
      await again.until(() => lab.comfy.prompts.filter((p) => p.clientId === second.id && p.status === 'running' && p.steps >= 2).length === 1, 20_000);
      await lab.comfy.restart({ downMs: 200 });
    }
    const events = await again.until((e) => e.some((x) => x.kind === 'completed' || x.kind === 'failed'), 30_000);
    await Promise.all([follow.stop(), again.stop()]);
    const failed = events.find((e) => e.kind === 'failed')!;
    expect(failed.data['error']).toMatchObject({ code: 'backend_unavailable', reason: 'lost', message: expect.stringContaining('ComfyUI lost the job\'s prompt') });
    const status = await natsRequest<JobRecord>(lab.script, `images.jobs.${second.id}.status`, undefined);
    expect(status).toMatchObject({ state: 'failed', error: { reason: 'lost', status: 503 } });
  }, 60_000);

  it('cancels a queued job before it reaches ComfyUI, and interrupts a running one', async () => {
    await using lab = await startImageStack({ comfy: { stepIntervalMs: 30 } });
    await waitForImageModels(lab.script);
    const since = new Date(Date.now() - 1000);
    const running = await natsRequest<SubmitReply>(lab.script, 'images.jobs.submit', { model: 'sdxl', prompt: 'first', steps: 200 });
    const queued = await natsRequest<SubmitReply>(lab.script, 'images.jobs.submit', { model: 'sdxl', prompt: 'second', steps: 4 });
    expect(queued.position).toBe(1);
    const follow = await followEvents(lab.script, undefined, since);
    await follow.until((e) => e.some((x) => x.kind === 'progress' && x.data['jobId'] === running.id));

    expect(await natsRequest(lab.script, `images.jobs.${queued.id}.cancel`, undefined)).toEqual({ id: queued.id, state: 'cancelled', cancelRequested: false });
    expect(await natsRequest(lab.script, `images.jobs.${running.id}.cancel`, { ifQueued: true })).toEqual({ id: running.id, state: 'running', cancelRequested: false });
    expect(await natsRequest(lab.script, `images.jobs.${running.id}.cancel`, undefined)).toEqual({ id: running.id, state: 'running', cancelRequested: true });
    await follow.until((e) => e.filter((x) => x.kind === 'cancelled').length === 2, 20_000);
    await new Promise((r) => setTimeout(r, 300));
    await follow.stop();
    const cancelled = follow.events.filter((e) => e.kind === 'cancelled').map((e) => [e.data['jobId'], e.data['phase']]);
    expect(cancelled).toEqual(expect.arrayContaining([[queued.id, 'queued'], [running.id, 'running']]));
    expect(follow.events.filter((e) => e.kind === 'started').map((e) => e.data['jobId'])).toEqual([running.id]);
    expect(lab.comfy.prompts.map((p) => [p.clientId, p.status])).toEqual([[running.id, 'interrupted']]);
    expect((await natsRequest<JobRecord>(lab.script, `images.jobs.${running.id}.status`, undefined)).state).toBe('cancelled');
    // A job that ended cannot be cancelled again; an unknown one is 404.
    expect(await natsRequest(lab.script, `images.jobs.${queued.id}.cancel`, undefined)).toEqual({ id: queued.id, state: 'cancelled', cancelRequested: false });
    const missing = await natsRequest(lab.script, 'images.jobs.imgjob_nothere000.cancel', undefined).catch((e: { status: number }) => e);
    expect((missing as { status: number }).status).toBe(404);
    const list = await natsRequest<{ jobs: JobRecord[] }>(lab.script, 'images.jobs.list', { limit: 10 });
    expect(list.jobs.map((j) => j.id)).toEqual([queued.id, running.id]);
  }, 60_000);

  it('telemetry counts the jobs from their events and reads the queue\'s depth from JetStream', async () => {
    await using lab = await startImageStack({ comfy: { stepIntervalMs: 5, faults: { hold: true } } });
    const telemetry = await startTelemetry(lab.stack);
    await waitForImageModels(lab.script);
    for (let i = 0; i < 3; i++) await natsRequest<SubmitReply>(lab.script, 'images.jobs.submit', { model: 'sdxl', prompt: `held ${i}`, steps: 3 });
    // One held at ComfyUI (the worker's one slot), two waiting in the work queue.
    await waitFor(async () => {
      const text = await telemetry.scrape();
      return sampleSum(text, 'homelab_image_jobs_running', { backend: 'comfyui' }) === 1 && sampleSum(text, 'homelab_image_jobs_queued', { backend: 'comfyui' }) === 2;
    }, 15_000, 'queue depth 2 waiting, 1 running');
    lab.comfy.release();
    await waitFor(async () => sampleSum(await telemetry.scrape(), 'homelab_image_jobs_total', { backend: 'comfyui', model: 'sdxl', outcome: 'completed' }) === 3, 20_000, 'three completed jobs');
    const text = await telemetry.scrape();
    expect(sampleSum(text, 'homelab_image_jobs_submitted_total', { backend: 'comfyui' })).toBe(3);
    expect(sampleSum(text, 'homelab_image_images_total', { model: 'sdxl' })).toBe(3);
    expect(sampleSum(text, 'homelab_image_queue_wait_seconds_count', { backend: 'comfyui' })).toBe(3);
    expect(sampleSum(text, 'homelab_image_steps_per_second_count', { backend: 'comfyui' })).toBe(3);
    await waitFor(async () => sampleSum(await telemetry.scrape(), 'homelab_image_jobs_queued', { backend: 'comfyui' }) === 0, 15_000, 'an empty queue');
    await telemetry.stop();
  }, 60_000);
});
