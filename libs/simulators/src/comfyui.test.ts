import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startComfyUISimulator, type ComfyUISimulator } from './comfyui.ts';
import { decodePng, encodePng, pngSize, seededImage } from './png.ts';

const workflowFile = (name: string): Record<string, { class_type: string; inputs: Record<string, unknown> }> =>
  JSON.parse(readFileSync(fileURLToPath(new URL(`../../../config/workflows/${name}`, import.meta.url)), 'utf8'));

interface Frame { json?: { type: string; data: Record<string, unknown> }; binary?: Buffer }

/** A websocket client collecting ComfyUI's frames, as the worker would see them. */
async function openSocket(sim: ComfyUISimulator, clientId: string): Promise<{ frames: Frame[]; ws: WebSocket; until(pred: (f: Frame) => boolean, ms?: number): Promise<Frame> }> {
  const ws = new WebSocket(`${sim.url.replace('http', 'ws')}/ws?clientId=${clientId}`);
  const frames: Frame[] = [];
  const waiters = new Set<() => void>();
  ws.on('message', (data, isBinary) => {
    frames.push(isBinary ? { binary: data as Buffer } : { json: JSON.parse(String(data)) as Frame['json'] });
    for (const w of waiters) w();
  });
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  return {
    frames, ws,
    until: (pred, ms = 5000) => new Promise((resolve, reject) => {
      const check = (): void => { const hit = frames.find(pred); if (hit) { waiters.delete(check); clearTimeout(t); resolve(hit); } };
      const t = setTimeout(() => { waiters.delete(check); reject(new Error(`no matching frame; got ${frames.map((f) => f.json?.type ?? 'binary').join(',')}`)); }, ms);
      waiters.add(check);
      check();
    }),
  };
}

async function postPrompt(sim: ComfyUISimulator, prompt: unknown, clientId = 'c1'): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${sim.url}/prompt`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt, client_id: clientId }) });
  return { status: res.status, body: await res.json() as Record<string, unknown> };
}

function textToImage(overrides: { width?: number; height?: number; steps?: number; seed?: number; batch?: number } = {}): ReturnType<typeof workflowFile> {
  const wf = workflowFile('sdxl-text-to-image.json');
  wf['5']!.inputs['width'] = overrides.width ?? 64;
  wf['5']!.inputs['height'] = overrides.height ?? 48;
  wf['5']!.inputs['batch_size'] = overrides.batch ?? 1;
  wf['3']!.inputs['steps'] = overrides.steps ?? 4;
  wf['3']!.inputs['seed'] = overrides.seed ?? 7;
  wf['6']!.inputs['text'] = 'a lighthouse';
  return wf;
}

let sim: ComfyUISimulator | undefined;
afterEach(async () => { await sim?.close(); sim = undefined; });

describe('PNG encoder', () => {
  it('writes a PNG that decodes to the same pixels, with its size in the header', () => {
    const image = seededImage(37, 21, 42);
    const png = encodePng(image);
    expect(pngSize(png)).toEqual({ width: 37, height: 21 });
    expect(Buffer.from(decodePng(png).pixels).equals(Buffer.from(image.pixels))).toBe(true);
  });
  it('refuses pixels that do not match the size', () => {
    expect(() => encodePng({ width: 2, height: 2, channels: 3, pixels: new Uint8Array(5) })).toThrow(/expected 12 bytes/);
  });
});

describe('ComfyUI simulator', () => {
  it('runs a prompt with ComfyUI\'s websocket messages, previews, history and a real PNG of the requested size', async () => {
    sim = await startComfyUISimulator({ stepIntervalMs: 1 });
    const socket = await openSocket(sim, 'c1');
    const first = await socket.until((f) => f.json?.type === 'status');
    expect(first.json!.data).toEqual({ status: { exec_info: { queue_remaining: 0 } }, sid: 'c1' });

    const { status, body } = await postPrompt(sim, textToImage({ width: 64, height: 48, steps: 4 }));
    expect(status).toBe(200);
    expect(body).toEqual({ prompt_id: expect.any(String), number: 0, node_errors: {} });
    const promptId = body['prompt_id'] as string;
    await socket.until((f) => f.json?.type === 'executing' && f.json.data['node'] === null);

    const types = socket.frames.filter((f) => f.json && f.json.type !== 'status').map((f) => f.json!.type);
    expect(types[0]).toBe('execution_start');
    expect(types[1]).toBe('execution_cached');
    expect(types.filter((t) => t === 'progress')).toHaveLength(4);
    expect(types.slice(-3)).toEqual(['executed', 'execution_success', 'executing']);
    const progress = socket.frames.filter((f) => f.json?.type === 'progress').map((f) => f.json!.data);
    expect(progress.at(-1)).toEqual({ value: 4, max: 4, prompt_id: promptId, node: '3' });

    // Binary previews: event type 1 (PREVIEW_IMAGE), image type 2 (PNG), an eighth of the size (at least 8 px).
    const previews = socket.frames.filter((f) => f.binary);
    expect(previews).toHaveLength(4);
    expect(previews[0]!.binary!.readUInt32BE(0)).toBe(1);
    expect(previews[0]!.binary!.readUInt32BE(4)).toBe(2);
    expect(pngSize(previews[0]!.binary!.subarray(8))).toEqual({ width: 8, height: 8 });

    const executed = socket.frames.find((f) => f.json?.type === 'executed')!.json!.data as { node: string; output: { images: { filename: string; subfolder: string; type: string }[] } };
    expect(executed.node).toBe('9');
    const image = executed.output.images[0]!;
    expect(image).toEqual({ filename: expect.stringMatching(/^sdxl_\d{5}_\.png$/), subfolder: 'homelab', type: 'output' });

    const history = await (await fetch(`${sim.url}/history/${promptId}`)).json() as Record<string, { outputs: Record<string, unknown>; status: { status_str: string; completed: boolean } }>;
    expect(history[promptId]!.status).toMatchObject({ status_str: 'success', completed: true });
    expect(history[promptId]!.outputs['9']).toEqual({ images: [image] });

    const view = await fetch(`${sim.url}/view?${new URLSearchParams({ filename: image.filename, subfolder: image.subfolder, type: image.type })}`);
    expect(view.headers.get('content-type')).toBe('image/png');
    expect(pngSize(new Uint8Array(await view.arrayBuffer()))).toEqual({ width: 64, height: 48 });
    socket.ws.close();
  });

  it('refuses an invalid prompt with 400, ComfyUI\'s error and node_errors', async () => {
    sim = await startComfyUISimulator();
    const wf = textToImage();
    wf['3']!.inputs['steps'] = 20000;
    wf['4']!.inputs['ckpt_name'] = 'missing.safetensors';
    const { status, body } = await postPrompt(sim, wf);
    expect(status).toBe(400);
    expect(body['error']).toMatchObject({ type: 'prompt_outputs_failed_validation', message: 'Prompt outputs failed validation' });
    const nodeErrors = body['node_errors'] as Record<string, { errors: { type: string; details: string }[]; class_type: string; dependent_outputs: string[] }>;
    expect(nodeErrors['3']).toMatchObject({ class_type: 'KSampler', dependent_outputs: ['9'], errors: [{ type: 'value_bigger_than_max', details: 'steps' }] });
    expect(nodeErrors['4']!.errors[0]).toMatchObject({ type: 'value_not_in_list', details: expect.stringContaining("ckpt_name: 'missing.safetensors' not in") });
  });

  it('names an unknown node class, as ComfyUI does for a missing custom node', async () => {
    sim = await startComfyUISimulator();
    const wf = textToImage();
    wf['8']!.class_type = 'VAEDecodeTiledXL';
    const { status, body } = await postPrompt(sim, wf);
    expect(status).toBe(400);
    expect(body).toEqual({ error: { type: 'invalid_prompt', message: 'Cannot execute because node VAEDecodeTiledXL does not exist.', details: "Node ID '#8'", extra_info: {} }, node_errors: {} });
  });

  it('queues prompts in order, deletes a pending one and interrupts the running one', async () => {
    sim = await startComfyUISimulator({ stepIntervalMs: 5, faults: { hold: true } });
    const socket = await openSocket(sim, 'c1');
    const a = (await postPrompt(sim, textToImage({ steps: 50, seed: 1 }))).body['prompt_id'] as string;
    const b = (await postPrompt(sim, textToImage({ seed: 2 }))).body['prompt_id'] as string;
    const c = (await postPrompt(sim, textToImage({ seed: 3 }))).body['prompt_id'] as string;
    const queue = await (await fetch(`${sim.url}/queue`)).json() as { queue_running: unknown[][]; queue_pending: unknown[][] };
    expect(queue.queue_running.map((i) => i[1])).toEqual([a]);
    expect(queue.queue_pending.map((i) => i[1])).toEqual([b, c]);
    await fetch(`${sim.url}/queue`, { method: 'POST', body: JSON.stringify({ delete: [b] }) });
    sim.release();
    await socket.until((f) => f.json?.type === 'progress' && f.json.data['prompt_id'] === a);
    // A targeted interrupt of a prompt that is not running changes nothing.
    await fetch(`${sim.url}/interrupt`, { method: 'POST', body: JSON.stringify({ prompt_id: c }) });
    await fetch(`${sim.url}/interrupt`, { method: 'POST', body: JSON.stringify({ prompt_id: a }) });
    const interrupted = await socket.until((f) => f.json?.type === 'execution_interrupted');
    expect(interrupted.json!.data).toMatchObject({ prompt_id: a, node_id: '3', node_type: 'KSampler' });
    await socket.until((f) => f.json?.type === 'execution_success' && f.json.data['prompt_id'] === c);
    expect(sim.prompts.map((p) => [p.promptId, p.status])).toEqual([[a, 'interrupted'], [b, 'deleted'], [c, 'success']]);
    const history = await (await fetch(`${sim.url}/history/${a}`)).json() as Record<string, { status: { status_str: string } }>;
    expect(history[a]!.status.status_str).toBe('error');
    socket.ws.close();
  });

  it('fails a prompt with execution_error from a node, and with torch.OutOfMemoryError', async () => {
    sim = await startComfyUISimulator({ stepIntervalMs: 1, faults: { errorInNode: { classType: 'VAEDecode', message: 'tiles too large', count: 1 }, outOfMemory: { count: 0 } } });
    const socket = await openSocket(sim, 'c1');
    const first = (await postPrompt(sim, textToImage())).body['prompt_id'] as string;
    const error = await socket.until((f) => f.json?.type === 'execution_error');
    expect(error.json!.data).toMatchObject({ prompt_id: first, node_id: '8', node_type: 'VAEDecode', exception_message: 'tiles too large', exception_type: 'RuntimeError' });
    sim.setFaults({ outOfMemory: { count: 1 } });
    const second = (await postPrompt(sim, textToImage({ seed: 99 }))).body['prompt_id'] as string;
    const oom = await socket.until((f) => f.json?.type === 'execution_error' && f.json.data['prompt_id'] === second);
    expect(oom.json!.data).toMatchObject({ node_type: 'KSampler', exception_type: 'torch.OutOfMemoryError' });
    socket.ws.close();
  });

  it('takes an upload and uses it in an image-to-image workflow, at the input image\'s size', async () => {
    sim = await startComfyUISimulator({ stepIntervalMs: 1 });
    const form = new FormData();
    form.append('image', new Blob([encodePng(seededImage(40, 24, 5))], { type: 'image/png' }), 'in.png');
    form.append('subfolder', 'homelab');
    form.append('overwrite', 'true');
    const upload = await (await fetch(`${sim.url}/upload/image`, { method: 'POST', body: form })).json();
    expect(upload).toEqual({ name: 'in.png', subfolder: 'homelab', type: 'input' });
    const wf = workflowFile('sd15-image-to-image.json');
    wf['1']!.inputs['image'] = 'homelab/in.png';
    wf['4']!.inputs['text'] = 'a watercolour';
    wf['6']!.inputs['steps'] = 2;
    const socket = await openSocket(sim, 'c2');
    expect((await postPrompt(sim, wf, 'c2')).status).toBe(200);
    const executed = await socket.until((f) => f.json?.type === 'executed');
    const image = (executed.json!.data['output'] as { images: { filename: string; subfolder: string }[] }).images[0]!;
    const view = await fetch(`${sim.url}/api/view?filename=${image.filename}&subfolder=${image.subfolder}&type=output`);
    expect(pngSize(new Uint8Array(await view.arrayBuffer()))).toEqual({ width: 40, height: 24 });
    socket.ws.close();
  });

  it('drops the websockets mid-prompt and, on reconnect with the same clientId, says which node runs', async () => {
    sim = await startComfyUISimulator({ stepIntervalMs: 10, faults: { dropWebSocketsAtStep: 2 } });
    const socket = await openSocket(sim, 'c3');
    const closed = new Promise((r) => socket.ws.once('close', r));
    const promptId = (await postPrompt(sim, textToImage({ steps: 20 }), 'c3')).body['prompt_id'] as string;
    await closed;
    const again = await openSocket(sim, 'c3');
    const executing = await again.until((f) => f.json?.type === 'executing');
    expect(executing.json!.data).toEqual({ node: '3' });
    await again.until((f) => f.json?.type === 'execution_success' && f.json.data['prompt_id'] === promptId);
    again.ws.close();
  });

  it('loses its queue and history on a restart, and listens again on the same port', async () => {
    sim = await startComfyUISimulator({ stepIntervalMs: 20 });
    const port = sim.port;
    const promptId = (await postPrompt(sim, textToImage({ steps: 100 }))).body['prompt_id'] as string;
    await sim.restart({ downMs: 50 });
    expect(sim.port).toBe(port);
    expect(await (await fetch(`${sim.url}/history/${promptId}`)).json()).toEqual({});
    expect(await (await fetch(`${sim.url}/queue`)).json()).toEqual({ queue_running: [], queue_pending: [] });
    expect(sim.prompts[0]!.status).toBe('lost');
    const stats = await (await fetch(`${sim.url}/system_stats`)).json() as { system: { comfyui_version: string }; devices: { vram_total: number; vram_free: number }[] };
    expect(stats.system.comfyui_version).toMatch(/^\d+\.\d+\.\d+$/);
    expect(stats.devices[0]!.vram_free).toBeLessThanOrEqual(stats.devices[0]!.vram_total);
    const info = await (await fetch(`${sim.url}/object_info/KSampler`)).json() as Record<string, { input: { required: Record<string, unknown> }; output: string[] }>;
    expect(info['KSampler']!.output).toEqual(['LATENT']);
    expect(info['KSampler']!.input.required['steps']).toEqual(['INT', { default: 20, min: 1, max: 10000 }]);
  });
});
