import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pngSize } from '@homelab/simulators';
import { connectAs } from '@homelab/testing';
import { followEvents, natsRequest, startImageStack, type ImageStack } from './helpers/images-stack.ts';

/*
 * Cloud images: gpt-image-* and dall-e-* go to OpenAI (the simulator) through worker-cloud and the
 * `openai` SDK, with the keys, budgets and local-first policy of the chat path. ComfyUI's worker is
 * not running here, so the alias `image` has to fall back to the cloud, where the key allows it.
 */

let lab: ImageStack;
const keys: Record<string, string> = {};

beforeAll(async () => {
  lab = await startImageStack({
    services: ['worker-cloud', 'router', 'ingress'],
    stack: { auth: true },
    images: { extra: '  cloudDailyBudgetUsd: 0.2\n' },
  });
  await using admin = await connectAs(lab.stack.nats, 'admin');
  for (const [name, policy] of Object.entries({ cloud: {}, lab: { localOnly: true }, tight: { dailyTokens: 300 } })) {
    keys[name] = (await natsRequest<{ key: string }>(admin, 'keys.create', { name, ...policy })).key;
  }
}, 60_000);

afterAll(async () => { await lab?.[Symbol.asyncDispose](); });

const client = (key: string): OpenAI => new OpenAI({ apiKey: key, baseURL: `${lab.stack.ingressUrl}/v1`, maxRetries: 0 });

describe('cloud images (OpenAI through worker-cloud)', () => {
  it('gpt-image-1 answers through the SDK; the job reports its tokens and its price', async () => {
    const since = new Date();
    const raw = await client(keys['cloud']!).images.generate({ model: 'gpt-image-1', prompt: 'a kite', size: '64x64', quality: 'low' }).withResponse();
    expect(raw.response.headers.get('x-homelab-backend')).toBe('openai');
    expect(pngSize(Buffer.from(raw.data.data![0]!.b64_json!, 'base64'))).toEqual({ width: 64, height: 64 });
    expect(raw.data.usage).toMatchObject({ input_tokens: 12, output_tokens: 272, total_tokens: 284 });
    // The worker passed OpenAI's own options on, and asked for what it was asked.
    const sent = lab.stack.sims.openai.requests.filter((r) => r.path === '/v1/images/generations').at(-1)!.body as Record<string, unknown>;
    expect(sent).toMatchObject({ model: 'gpt-image-1', prompt: 'a kite', size: '64x64', quality: 'low', n: 1 });
    const follow = await followEvents(lab.script, undefined, since);
    const events = await follow.until((e) => e.some((x) => x.kind === 'completed'));
    await follow.stop();
    expect(events.find((e) => e.kind === 'completed')!.data).toMatchObject({ backend: 'openai', model: 'gpt-image-1', costUsd: 0.04, inputTokens: 12, outputTokens: 272, apiKey: 'cloud' });
  });

  it('streams OpenAI\'s partial images through to the client', async () => {
    const stream = await client(keys['cloud']!).images.generate({ model: 'gpt-image-1', prompt: 'a comet', size: '64x64', stream: true, partial_images: 2 });
    const types: string[] = [];
    for await (const event of stream) types.push(event.type);
    expect(types).toEqual(['image_generation.partial_image', 'image_generation.partial_image', 'image_generation.completed']);
  });

  it('the alias `image` falls back to the cloud while the lab cannot serve it, but never for a local-only key', async () => {
    const raw = await client(keys['cloud']!).images.generate({ model: 'image', prompt: 'a mill', size: '64x64' }).withResponse();
    expect(raw.response.headers.get('x-homelab-route-reason')).toBe('alias:image > comfyui unreachable > openai');
    const local = await client(keys['lab']!).images.generate({ model: 'image', prompt: 'a mill' }).catch((e: unknown) => e);
    expect(local).toMatchObject({ status: 503, error: { code: 'no_backend', message: expect.stringContaining('openai skipped (local-only)') } });
    const models = [];
    for await (const m of client(keys['lab']!).models.list()) models.push(m.id);
    expect(models).not.toContain('gpt-image-1');
  });

  it('cloud image tokens count against a key\'s budget, and the daily image budget stops cloud images', async () => {
    await client(keys['tight']!).images.generate({ model: 'gpt-image-1', prompt: 'one', size: '64x64' });
    // The ledger trails the jobs by a moment.
    let refused: unknown;
    for (let i = 0; i < 50 && !refused; i++) {
      refused = await client(keys['tight']!).images.generate({ model: 'gpt-image-1', prompt: 'two', size: '64x64' }).then(() => undefined, (e: unknown) => e);
      if (!refused) await new Promise((r) => setTimeout(r, 100));
    }
    expect(refused).toMatchObject({ status: 429, error: { code: 'budget_exceeded', message: expect.stringContaining("daily cloud token budget of key 'tight'") } });

    // 0.04 USD an image, 0.20 a day: a few more images reach it.
    let stopped: unknown;
    for (let i = 0; i < 50 && !stopped; i++) {
      stopped = await client(keys['cloud']!).images.generate({ model: 'gpt-image-1', prompt: 'more', size: '64x64' }).then(() => undefined, (e: unknown) => e);
      if (!stopped) await new Promise((r) => setTimeout(r, 100));
    }
    expect(stopped).toMatchObject({ status: 503, error: { code: 'no_backend', message: expect.stringContaining('daily cloud image budget reached') } });
  });
});
