import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI, { toFile } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodePng, pngSize, seededImage } from '@homelab/simulators';
import { connectAs } from '@homelab/testing';
import { WORKFLOWS, followEvents, natsRequest, objectStoreConsumers, startImageStack, waitForImageModels, type ImageStack } from './helpers/images-stack.ts';

/*
 * OpenAI's images API at the edge, with the official `openai` SDK against the stack and the ComfyUI
 * simulator: generate (b64_json, url then fetching it), edit (multipart), streaming partial images,
 * the image models in /v1/models, errors in OpenAI's shape, and clients that hang up.
 */

let lab: ImageStack;
let keys: { owner: string; other: string };
const dir = mkdtempSync(join(tmpdir(), 'homelab-images-http-'));

beforeAll(async () => {
  // A workflow whose decoder is a custom node this ComfyUI does not have.
  const broken = JSON.parse(readFileSync(join(WORKFLOWS, 'sdxl-text-to-image.json'), 'utf8')) as Record<string, { class_type: string }>;
  broken['8']!.class_type = 'VAEDecodeTiledXL';
  writeFileSync(join(dir, 'broken.json'), JSON.stringify(broken));
  lab = await startImageStack({
    services: ['worker-comfyui', 'router', 'ingress'],
    comfy: { stepIntervalMs: 10 },
    stack: { auth: true },
    images: {
      extraModels: `    broken:\n      workflow: ${join(dir, 'broken.json')}\n      mapping: { prompt: 6.text, width: 5.width, height: 5.height, seed: 3.seed, steps: 3.steps }\n      defaults: { steps: 3 }\n`,
    },
  });
  await using admin = await connectAs(lab.stack.nats, 'admin');
  const create = async (name: string): Promise<string> => (await natsRequest<{ key: string }>(admin, 'keys.create', { name })).key;
  keys = { owner: await create('owner'), other: await create('other') };
  await waitForImageModels(lab.script);
}, 60_000);

afterAll(async () => {
  await lab?.[Symbol.asyncDispose]();
  rmSync(dir, { recursive: true, force: true });
});

/** The gateway's extensions of OpenAI's parameters (`steps`, `seed`, `negative_prompt`), which the SDK passes on as given. */
const withExtensions = (params: OpenAI.ImageGenerateParamsNonStreaming, extra: Record<string, unknown>): OpenAI.ImageGenerateParamsNonStreaming => ({ ...params, ...extra });

const client = (key = keys.owner, options: Partial<ConstructorParameters<typeof OpenAI>[0]> = {}): OpenAI =>
  new OpenAI({ apiKey: key, baseURL: `${lab.stack.ingressUrl}/v1`, maxRetries: 0, ...options });

describe('OpenAI images API (official SDK)', () => {
  it('images.generate answers b64_json with a PNG of the requested size', async () => {
    const result = await client().images.generate({ model: 'sdxl', prompt: 'a lighthouse', size: '128x64', n: 2, response_format: 'b64_json' });
    expect(result.data).toHaveLength(2);
    for (const image of result.data!) expect(pngSize(Buffer.from(image.b64_json!, 'base64'))).toEqual({ width: 128, height: 64 });
    expect(result).toMatchObject({ created: expect.any(Number), output_format: 'png', size: '128x64' });
  });

  it('images.generate answers a url on the gateway: signed for an <img src>, otherwise only for the key that made it', async () => {
    const result = await client().images.generate({ model: 'sdxl', prompt: 'a harbour', size: '64x64', response_format: 'url' });
    const url = new URL(result.data![0]!.url!);
    expect(url.origin).toBe(lab.stack.ingressUrl);
    expect(url.pathname).toMatch(/^\/v1\/images\/files\/img_[A-Za-z0-9_-]{32}$/);
    const signed = await fetch(url);
    expect(signed.status).toBe(200);
    expect(signed.headers.get('content-type')).toBe('image/png');
    expect(pngSize(new Uint8Array(await signed.arrayBuffer()))).toEqual({ width: 64, height: 64 });

    const bare = `${url.origin}${url.pathname}`;
    expect((await fetch(bare)).status).toBe(401);
    expect((await fetch(bare, { headers: { authorization: `Bearer ${keys.owner}` } })).status).toBe(200);
    const otherKey = await fetch(bare, { headers: { authorization: `Bearer ${keys.other}` } });
    expect(otherKey.status).toBe(404);
    expect(await otherKey.json()).toMatchObject({ error: { code: 'not_found', type: 'invalid_request_error' } });
    const tampered = new URL(url);
    tampered.searchParams.set('expires', String(Number(url.searchParams.get('expires')) + 60));
    const refused = await fetch(tampered);
    expect(refused.status).toBe(403);
    expect(await refused.json()).toMatchObject({ error: { code: 'forbidden' } });
    // Serving the file three times left no consumer on the object store's stream.
    expect(await objectStoreConsumers(lab.stack)).toEqual([]);
  });

  it('images.edit sends a multipart form; the image-to-image workflow answers at the input\'s size', async () => {
    const input = await toFile(encodePng(seededImage(80, 48, 3)), 'in.png', { type: 'image/png' });
    const result = await client().images.edit({ model: 'sd15-img2img', image: input, prompt: 'as a watercolour', response_format: 'b64_json' });
    expect(pngSize(Buffer.from(result.data![0]!.b64_json!, 'base64'))).toEqual({ width: 80, height: 48 });
    const prompts = lab.comfy.prompts.filter((p) => p.workflow['1']?.class_type === 'LoadImage');
    expect(prompts.at(-1)!.workflow['1']!.inputs['image']).toMatch(/^homelab\/imgjob_.+-image\.png$/);

    const masked = await client().images.edit({
      model: 'sd15-inpaint', image: await toFile(encodePng(seededImage(48, 48, 4)), 'in.png', { type: 'image/png' }),
      mask: await toFile(encodePng({ width: 48, height: 48, channels: 4, pixels: new Uint8Array(48 * 48 * 4) }), 'mask.png', { type: 'image/png' }), prompt: 'a door',
    });
    expect(pngSize(Buffer.from(masked.data![0]!.b64_json!, 'base64'))).toEqual({ width: 48, height: 48 });
    // The worker read the uploaded inputs from the object store without leaving a consumer.
    expect(await objectStoreConsumers(lab.stack)).toEqual([]);
    const notAnImage = await client().images.edit({ model: 'sd15-img2img', image: await toFile(Buffer.from('hello'), 'x.png', { type: 'image/png' }), prompt: 'x' }).catch((e: unknown) => e);
    expect(notAnImage).toMatchObject({ status: 400, error: { code: 'invalid_request', message: "'image' must be a PNG, JPEG or WebP image" } });
    const textModel = await client().images.edit({ model: 'sdxl', image: input, prompt: 'x' }).catch((e: unknown) => e);
    expect(textModel).toMatchObject({ status: 400, error: { param: 'model', message: expect.stringContaining('makes images from text') } });
  });

  it('streams partial images from ComfyUI\'s previews as OpenAI\'s image_generation events', async () => {
    const stream = await client().images.generate({ model: 'sdxl', prompt: 'a comet', size: '64x64', stream: true, partial_images: 2 });
    const events = [];
    for await (const event of stream) events.push(event);
    expect(events.map((e) => e.type)).toEqual(['image_generation.partial_image', 'image_generation.partial_image', 'image_generation.completed']);
    expect(events.map((e) => (e as { partial_image_index?: number }).partial_image_index)).toEqual([0, 1, undefined]);
    expect(pngSize(Buffer.from(events[0]!.b64_json, 'base64'))).toEqual({ width: 8, height: 8 });
    const done = events[2]!;
    expect(done).toMatchObject({ type: 'image_generation.completed', output_format: 'png', size: '64x64', usage: { total_tokens: 0 } });
    expect(pngSize(Buffer.from(done.b64_json, 'base64'))).toEqual({ width: 64, height: 64 });
  });

  it('lists the image models in /v1/models with type image', async () => {
    const models = [];
    for await (const m of client().models.list()) models.push(m as typeof m & { type?: string; kind?: string });
    expect(models.find((m) => m.id === 'sdxl')).toMatchObject({ owned_by: 'comfyui', type: 'image', kind: 'text-to-image' });
    expect(models.find((m) => m.id === 'sd15-inpaint')).toMatchObject({ owned_by: 'comfyui', type: 'image', kind: 'inpainting' });
    expect(models.find((m) => m.id === 'image')).toMatchObject({ type: 'image', owned_by: 'comfyui' });
    expect(models.find((m) => m.id === 'llama3.2:3b')?.type).toBeUndefined();
  });

  it('answers a workflow with a missing node, and a prompt the workflow rejects, with clear 400s in OpenAI\'s shape', async () => {
    const missing = await client().images.generate({ model: 'broken', prompt: 'x', size: '64x64' }).catch((e: unknown) => e);
    expect(missing).toMatchObject({ status: 400, error: { type: 'invalid_request_error', code: 'invalid_request', param: 'prompt', message: expect.stringContaining('Cannot execute because node VAEDecodeTiledXL does not exist') } });
    const rejected = await client().images.generate(withExtensions({ model: 'sdxl', prompt: 'x', size: '64x64' }, { steps: 15000 })).catch((e: unknown) => e);
    expect(rejected).toMatchObject({ status: 400, error: { code: 'invalid_request', message: 'ComfyUI refused the workflow: KSampler (node 3): steps: Value 15000 bigger than max of 10000' } });
    const badSize = await client().images.generate({ model: 'sdxl', prompt: 'x', size: '100x7' }).catch((e: unknown) => e);
    expect(badSize).toMatchObject({ status: 400, error: { param: 'size' } });
    const unknown = await client().images.generate({ model: 'nope', prompt: 'x' }).catch((e: unknown) => e);
    expect(unknown).toMatchObject({ status: 404, error: { code: 'model_not_found' } });
    const noKey = await client('hlk_wrong').images.generate({ model: 'sdxl', prompt: 'x' }).catch((e: unknown) => e);
    expect(noKey).toMatchObject({ status: 401 });
  });

  it('a client that hangs up: its queued job is cancelled; a running one finishes into the object store', async () => {
    // Only this test's jobs: events from now on (one clock: the server's and the test's).
    const since = new Date();
    const slow = new AbortController();
    const queuedClient = new AbortController();
    const running = client().images.generate(withExtensions({ model: 'sdxl', prompt: 'slow', size: '64x64' }, { steps: 150 }), { signal: slow.signal }).catch((e: unknown) => e);
    const follow = await followEvents(lab.script, undefined, since);
    await follow.until((e) => e.some((x) => x.kind === 'progress' && x.data['step'] === 2));
    const runningId = follow.events.find((e) => e.kind === 'progress')!.data['jobId'] as string;
    const queued = client().images.generate({ model: 'sdxl', prompt: 'waits', size: '64x64' }, { signal: queuedClient.signal }).catch((e: unknown) => e);
    await follow.until((e) => e.some((x) => x.kind === 'submitted' && x.data['jobId'] !== runningId));
    const queuedId = follow.events.find((e) => e.kind === 'submitted' && e.data['jobId'] !== runningId)!.data['jobId'] as string;
    queuedClient.abort();
    slow.abort();
    await Promise.all([running, queued]);
    await follow.until((e) => e.some((x) => x.kind === 'cancelled' && x.data['jobId'] === queuedId) && e.some((x) => x.kind === 'completed' && x.data['jobId'] === runningId), 30_000);
    await follow.stop();
    expect(follow.events.find((e) => e.kind === 'cancelled')!.data).toMatchObject({ jobId: queuedId, phase: 'queued' });
    expect(lab.comfy.prompts.some((p) => p.clientId === queuedId)).toBe(false);
    const record = await natsRequest<{ state: string; images: { id: string }[] }>(lab.script, `images.jobs.${runningId}.status`, undefined);
    expect(record.state).toBe('completed');
    const file = await fetch(`${lab.stack.ingressUrl}/v1/images/files/${record.images[0]!.id}`, { headers: { authorization: `Bearer ${keys.owner}` } });
    expect(file.status).toBe(200);
  }, 60_000);
});
