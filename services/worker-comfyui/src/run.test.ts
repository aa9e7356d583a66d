import { afterEach, describe, expect, it } from 'vitest';
import { GatewayError, type ImageJob, type ImageJobRecord, type ImagePartialFrame, type ImageProgress } from '@homelab/bus';
import { HandedBack, type ImageJobContext } from '@homelab/backends/images';
import { loadConfig } from '@homelab/config';
import { createLogger } from '@homelab/logging';
import { startComfyUISimulator, type ComfyUISimulator } from '@homelab/simulators';
import { ComfyClient, describeValidation, parseFrame } from './comfy-client.ts';
import { executionError, runComfyJob } from './run.ts';
import { loadWorkflow } from './workflow.ts';

/*
 * The runner against the ComfyUI simulator, without a bus: the job context is a plain object here,
 * recording what the runner reports. The bus side (records, events, the work queue) is tested end to end.
 */

const lab = loadConfig({ env: {} });
const models = new Map(Object.values(lab.images.models).map((m) => [m.name, loadWorkflow({ ...m, defaults: { ...m.defaults, width: 64, height: 64, steps: 6 } })]));
const settings = { ...lab.images.comfyui!, downTimeoutMs: 5000, jobTimeoutMs: 20_000, resubmitLost: 1 };
let sim: ComfyUISimulator | undefined;
afterEach(async () => { await sim?.close(); sim = undefined; });

function context(job: Partial<ImageJob>, record: Partial<ImageJobRecord> = {}): { ctx: ImageJobContext; progress: ImageProgress[]; partials: ImagePartialFrame[]; patches: Partial<ImageJobRecord>[]; cancel: AbortController; stop: AbortController } {
  const full: ImageJob = {
    id: `imgjob_${Math.random().toString(36).slice(2, 12)}`, kind: 'generate', backend: 'comfyui', model: 'sdxl', requestedModel: 'sdxl', routeReason: 'test', prompt: 'a fox',
    n: 1, outputFormat: 'png', responseFormat: 'b64_json', partialImages: 0, requestId: 'req_1', submittedAt: new Date().toISOString(), ...job,
  };
  const progress: ImageProgress[] = [];
  const partials: ImagePartialFrame[] = [];
  const patches: Partial<ImageJobRecord>[] = [];
  const cancel = new AbortController();
  const stop = new AbortController();
  let current = { id: full.id, state: 'running', attempts: 1, ...record } as ImageJobRecord;
  const ctx: ImageJobContext = {
    job: full, record: current, attempt: 1, cancelSignal: cancel.signal, stopSignal: stop.signal, log: createLogger({ service: 'test', level: 'silent' }),
    patch: async (change) => { patches.push(change); current = { ...current, ...change }; return current; },
    progress: (p) => progress.push(p),
    partial: (f) => partials.push(f),
    readInput: async () => { throw new Error('no inputs in these tests'); },
  };
  return { ctx, progress, partials, patches, cancel, stop };
}

describe('runComfyJob', () => {
  it('submits with the job id as client id and a recorded prompt id, reports progress and partial images, returns the PNGs', async () => {
    sim = await startComfyUISimulator({ stepIntervalMs: 2 });
    const client = new ComfyClient(sim.url, { connectTimeoutMs: 2000 });
    const { ctx, progress, partials, patches } = context({ n: 2, width: 96, height: 64, steps: 8, partialImages: 3, progressTo: '_INBOX.x' });
    const output = await runComfyJob(ctx, { client, models, settings });
    expect(output.images.map((i) => [i.width, i.height, i.contentType])).toEqual([[96, 64, 'image/png'], [96, 64, 'image/png']]);
    expect(output.steps).toBe(8);
    expect(progress.map((p) => p.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(progress[0]).toMatchObject({ of: 8, node: '3', nodeType: 'KSampler' });
    expect(partials.map((p) => p.index)).toEqual([0, 1, 2]);
    expect(partials[0]).toMatchObject({ output_format: 'png', width: 12, height: 8 });
    // The prompt id was recorded before ComfyUI had it, and ComfyUI took it.
    expect(patches[0]).toMatchObject({ promptId: sim.prompts[0]!.promptId, submissions: 1 });
    expect(sim.prompts[0]).toMatchObject({ clientId: ctx.job.id, status: 'success' });
    expect(sim.prompts[0]!.workflow['6']!.inputs['text']).toBe('a fox');
  });

  it('keeps following through dropped websockets, reading the outputs from /history', async () => {
    sim = await startComfyUISimulator({ stepIntervalMs: 5, faults: { dropWebSocketsAtStep: 3 } });
    const client = new ComfyClient(sim.url, { connectTimeoutMs: 2000 });
    const { ctx } = context({ steps: 10 });
    const output = await runComfyJob(ctx, { client, models, settings });
    expect(output.images).toHaveLength(1);
    expect(sim.wsConnections).toBe(2);
    expect(sim.prompts).toHaveLength(1);
  });

  it('takes over a prompt a dead worker submitted: no second prompt when it already finished', async () => {
    sim = await startComfyUISimulator({ stepIntervalMs: 1 });
    const client = new ComfyClient(sim.url, { connectTimeoutMs: 2000 });
    const first = context({ steps: 3 });
    await runComfyJob(first.ctx, { client, models, settings });
    const promptId = sim.prompts[0]!.promptId;
    const takeover = context({ ...first.ctx.job }, { promptId, submissions: 1 });
    const output = await runComfyJob(takeover.ctx, { client, models, settings });
    expect(output.images).toHaveLength(1);
    expect(sim.prompts).toHaveLength(1);
  });

  it('a cancel interrupts the running prompt; a stop leaves it running for the next worker', async () => {
    sim = await startComfyUISimulator({ stepIntervalMs: 10 });
    const client = new ComfyClient(sim.url, { connectTimeoutMs: 2000 });
    const cancelled = context({ steps: 500 });
    const run = runComfyJob(cancelled.ctx, { client, models, settings });
    while (cancelled.progress.length < 2) await new Promise((r) => setTimeout(r, 5));
    cancelled.cancel.abort();
    await expect(run).rejects.toMatchObject({ code: 'cancelled' });
    expect(sim.prompts[0]!.status).toBe('interrupted');

    const stopped = context({ steps: 40 });
    const second = runComfyJob(stopped.ctx, { client, models, settings });
    while (stopped.progress.length < 2) await new Promise((r) => setTimeout(r, 5));
    stopped.stop.abort();
    await expect(second).rejects.toBeInstanceOf(HandedBack);
    expect(sim.prompts[1]!.status).toBe('running');
  });

  it('fails with ComfyUI\'s reasons: refused workflow, node error, out of memory, ComfyUI gone', async () => {
    sim = await startComfyUISimulator({ stepIntervalMs: 1, faults: { errorInNode: { classType: 'VAEDecode', message: 'boom', count: 1 } } });
    const client = new ComfyClient(sim.url, { connectTimeoutMs: 2000 });
    await expect(runComfyJob(context({ steps: 20000 }).ctx, { client, models, settings })).rejects.toMatchObject({ code: 'invalid_request', reason: 'validation', status: 400 });
    await expect(runComfyJob(context({ steps: 2 }).ctx, { client, models, settings })).rejects.toMatchObject({ reason: 'node_error', nodeType: 'VAEDecode', message: 'ComfyUI failed in VAEDecode (node 8): RuntimeError: boom' });
    sim.setFaults({ outOfMemory: { count: 1 } });
    await expect(runComfyJob(context({ steps: 4 }).ctx, { client, models, settings })).rejects.toMatchObject({ reason: 'out_of_memory', status: 507 });
    await sim.close();
    const gone = new ComfyClient(sim.url, { connectTimeoutMs: 500 });
    await expect(runComfyJob(context({ steps: 2 }).ctx, { client: gone, models, settings: { ...settings, downTimeoutMs: 600 } })).rejects.toMatchObject({ code: 'backend_unavailable', reason: 'comfyui_unavailable' });
  });
});

describe('ComfyUI wire format', () => {
  it('reads binary preview frames and JSON messages, and ignores what it does not know', () => {
    const frame = Buffer.alloc(12);
    frame.writeUInt32BE(1, 0);
    frame.writeUInt32BE(1, 4);
    expect(parseFrame(frame, true)).toMatchObject({ kind: 'preview', format: 'jpeg' });
    frame.writeUInt32BE(3, 0);
    expect(parseFrame(frame, true)).toBeUndefined();
    expect(parseFrame(Buffer.from('{"type":"progress","data":{"value":1,"max":2}}'), false)).toEqual({ kind: 'json', type: 'progress', data: { value: 1, max: 2 } });
    expect(parseFrame(Buffer.from('not json'), false)).toBeUndefined();
  });

  it('describes node_errors and execution errors without the prompt', () => {
    expect(describeValidation({ type: 'x', message: 'Prompt outputs failed validation' }, { '4': { class_type: 'CheckpointLoaderSimple', errors: [{ message: 'Value not in list', details: "ckpt_name: 'a' not in []" }] } }))
      .toBe("ComfyUI refused the workflow: CheckpointLoaderSimple (node 4): ckpt_name: 'a' not in []: Value not in list");
    expect(executionError({ node_id: '3', node_type: 'KSampler', exception_type: 'torch.OutOfMemoryError', exception_message: 'Allocation on device' })).toBeInstanceOf(GatewayError);
    expect(executionError({ node_id: '3', node_type: 'KSampler', exception_type: 'RuntimeError', exception_message: 'CUDA error: out of memory\nmore' }).reason).toBe('out_of_memory');
  });
});
