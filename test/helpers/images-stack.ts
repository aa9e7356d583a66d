import { join } from 'node:path';
import { jetstream, jetstreamManager, DeliverPolicy, type JsMsg } from '@nats-io/jetstream';
import { startComfyUISimulator, type ComfyUISimulator, type ComfyUISimulatorOptions } from '@homelab/simulators';
import { REPO_ROOT, connectAs, startTestStack, type TestStack, type TestStackOptions } from '@homelab/testing';
import type { NatsConnection } from '@homelab/bus';

export const WORKFLOWS = join(REPO_ROOT, 'config', 'workflows');

/** The images section of a test lab: the shipped workflows, small sizes, short timeouts. */
export function imagesYaml(o: { concurrency?: number; ackWaitMs?: number; resubmitLost?: number; downTimeoutMs?: number; extraModels?: string; extra?: string } = {}): string {
  return `
images:
  comfyui: { service: ai-node/comfyui, concurrency: ${o.concurrency ?? 1}, downTimeoutMs: ${o.downTimeoutMs ?? 8000}, resubmitLost: ${o.resubmitLost ?? 1} }
  models:
    sdxl:
      workflow: ${join(WORKFLOWS, 'sdxl-text-to-image.json')}
      description: SDXL (simulated)
      mapping: { prompt: 6.text, negativePrompt: 7.text, width: 5.width, height: 5.height, seed: 3.seed, steps: 3.steps, batchSize: 5.batch_size }
      defaults: { width: 64, height: 64, steps: 6 }
      maxSteps: 20000
    sd15-img2img:
      workflow: ${join(WORKFLOWS, 'sd15-image-to-image.json')}
      mapping: { prompt: 4.text, negativePrompt: 5.text, seed: 6.seed, steps: 6.steps, image: 1.image, denoise: 6.denoise }
      defaults: { steps: 4 }
    sd15-inpaint:
      workflow: ${join(WORKFLOWS, 'sd15-inpaint.json')}
      mapping: { prompt: 6.text, negativePrompt: 7.text, seed: 8.seed, steps: 8.steps, image: 1.image, mask: 2.image }
      defaults: { steps: 4 }
${o.extraModels ?? ''}
  aliases:
    image: [comfyui/sdxl, openai/gpt-image-1]
  cloudModels: [gpt-image-1]
  prices: { openai/gpt-image-1: 0.04 }
  jobs: { ackWaitMs: ${o.ackWaitMs ?? 30000}, maxAttempts: 3 }
${o.extra ?? ''}
`;
}

export interface ImageStack extends AsyncDisposable {
  stack: TestStack;
  comfy: ComfyUISimulator;
  /** A connection as the `scripts` user, as a script on the VM would have. */
  script: NatsConnection;
}

/**
 * The consumers on the object store's stream `OBJ_images`, listed as the ingress (the `scripts` user may
 * not list them). Reading files makes none (libs/bus object-read.ts): any found is a reader left behind.
 */
export async function objectStoreConsumers(stack: TestStack): Promise<string[]> {
  await using nc = await connectAs(stack.nats, 'ingress');
  const names: string[] = [];
  for await (const c of (await jetstreamManager(nc)).consumers.list('OBJ_images')) names.push(c.name);
  return names;
}

/** A test stack with the ComfyUI simulator (COMFYUI_URL) and the given services. */
export async function startImageStack(o: {
  services?: string[]; comfy?: ComfyUISimulatorOptions; images?: Parameters<typeof imagesYaml>[0]; env?: Record<string, string>;
  stack?: Partial<TestStackOptions>;
} = {}): Promise<ImageStack> {
  const comfy = await startComfyUISimulator({ stepIntervalMs: 5, ...o.comfy });
  let stack: TestStack | undefined;
  try {
    stack = await startTestStack({
      ...o.stack, services: [],
      env: { COMFYUI_URL: comfy.url, ...o.env },
      extraYaml: `${imagesYaml(o.images)}\n${o.stack?.extraYaml ?? ''}`,
    });
    for (const s of o.services ?? ['worker-comfyui', 'router']) await stack.startService(s);
    const script = await connectAs(stack.nats, 'scripts');
    const ready = stack;
    return {
      stack: ready, comfy, script,
      async [Symbol.asyncDispose]() {
        await script.close();
        await ready[Symbol.asyncDispose]();
        await comfy.close();
      },
    };
  } catch (err) {
    await stack?.[Symbol.asyncDispose]();
    await comfy.close();
    throw err;
  }
}

export interface FollowedEvent { subject: string; kind: string; seq: number; data: Record<string, unknown> }

/**
 * Follows image events from the IMAGES stream as a script would: an ordered consumer from a moment
 * before the job was submitted, keeping the events whose last token is the job id (or all, without one).
 * nats-server 2.9 takes one filter, a subset of one stream subject, so `images.*.<id>` cannot be the filter.
 */
export async function followEvents(nc: NatsConnection, jobId?: string, since = new Date(Date.now() - 60_000)): Promise<{ events: FollowedEvent[]; until(pred: (e: FollowedEvent[]) => boolean, ms?: number): Promise<FollowedEvent[]>; stop(): Promise<void> }> {
  const consumer = await jetstream(nc).consumers.get('IMAGES', { deliver_policy: DeliverPolicy.StartTime, opt_start_time: since.toISOString() });
  const messages = await consumer.consume();
  const events: FollowedEvent[] = [];
  const waiters = new Set<() => void>();
  const loop = (async () => {
    for await (const m of messages as AsyncIterable<JsMsg>) {
      if (jobId && !m.subject.endsWith(`.${jobId}`)) continue;
      events.push({ subject: m.subject, kind: m.subject.split('.')[1]!, seq: m.seq, data: m.json() });
      for (const w of waiters) w();
    }
  })();
  return {
    events,
    until: (pred, ms = 20_000) => new Promise((resolve, reject) => {
      const check = (): void => { if (pred(events)) { waiters.delete(check); clearTimeout(t); resolve(events); } };
      const t = setTimeout(() => { waiters.delete(check); reject(new Error(`events not as expected within ${ms} ms: ${events.map((e) => e.subject).join(', ')}`)); }, ms);
      waiters.add(check);
      check();
    }),
    async stop() { await messages.close(); await loop; },
  };
}

/** A request over NATS with JSON in and out; rejects with the service error when there is one. */
export async function natsRequest<T>(nc: NatsConnection, subject: string, body: unknown, timeoutMs = 10_000): Promise<T> {
  const reply = await nc.request(subject, body === undefined ? undefined : JSON.stringify(body), { timeout: timeoutMs });
  const code = reply.headers?.get('Nats-Service-Error-Code');
  if (code) throw Object.assign(new Error(reply.headers!.get('Nats-Service-Error')), { status: Number(code), body: reply.json() });
  return reply.json<T>();
}

/** Waits until the router lists the lab's image models (its discovery saw the ComfyUI worker). */
export async function waitForImageModels(nc: NatsConnection, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const list = await natsRequest<{ data: { id: string; type?: string }[] }>(nc, 'inference.models', undefined).catch(() => ({ data: [] }));
    if (list.data.some((m) => m.type === 'image' && m.id === 'sdxl')) return;
    if (Date.now() > deadline) throw new Error('the router does not list the image models');
    await new Promise((r) => setTimeout(r, 200));
  }
}
