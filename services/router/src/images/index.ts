import { DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import {
  GatewayError, H, ImageJobStore, ImageWorkerModelsSchema, Streams, Subjects, consumeEvents, encodeJson, ensureStreams, eventValidator,
  imageEventSubject, imageJobError, imageJobSubject, newImageJobId, newRequestId, respondJson, retryJetStreamApi, sendImageJobEnd, usageKeys, validator,
  type EventPublisher, type ImageCompleted, type ImageJob, type ImageJobRecord, type ImageRequest, type ImageSubmitReply, type ImageWorkerModels,
  type KeyRecord, type KeyRegistry, type MicroService, type ModelEntry, type ModelList, type Msg, type MsgHeaders, type NatsConnection,
} from '@homelab/bus';
import type { LabConfig } from '@homelab/config';
import type { Logger } from '@homelab/logging';
import { addUsage, keyOfRequest, scriptsScopeOf, type UsageBook } from '../keys.ts';
import { jobParameters, planImage, resolveImageModel, type ImageBackendView } from './resolve.ts';

/*
 * The router's part of image generation (docs/images.md): it decides which backend makes an image
 * (the lab's workflows first, the cloud where the request, its key and the budget allow), checks the
 * request against the chosen model, records the job, puts it on the work queue, and answers the job
 * API (`images.jobs.*`). It never waits for a job: the worker that ends it answers the requester.
 */

export interface ImagesDeps {
  nc: NatsConnection;
  log: Logger;
  config: LabConfig;
  service: MicroService;
  events: EventPublisher;
  /** API keys and their usage when the edge requires keys. */
  keys?: KeyRegistry;
  usage?: UsageBook;
  /** The `usage` bucket: cloud image tokens count toward a key's budget as chat tokens do. */
  usageKv?: KV;
}

export interface ImagesRouter {
  /** `GET /v1/models` with the image models added (each with `"type": "image"`). */
  withModels(list: ModelList): ModelList;
  stop(): Promise<void>;
}

const checkWorkerModels = validator(ImageWorkerModelsSchema);

export async function startImages(deps: ImagesDeps): Promise<ImagesRouter> {
  const { nc, log, config, service } = deps;
  const images = config.images;
  await ensureStreams(nc, { replicas: config.nats.replicas, streams: Streams.filter((s) => s.name === 'IMAGES' || s.name === 'IMAGE_JOBS') });
  const jobs = await ImageJobStore.open(nc, { replicas: config.nats.replicas, keepHours: images.jobs.keepHours });
  const comfy = new ComfyWatch(nc, config, log);
  comfy.start();
  const view: ImageBackendView = { comfyuiUp: () => comfy.up(), openai: Boolean(config.backends.openai) };
  const spend = images.cloudDailyBudgetUsd !== undefined ? await followImageSpend(nc, log) : undefined;
  const ledger = deps.usageKv ? await followImageLedger(nc, deps.usageKv, log) : undefined;
  const submitter = new Submitter(deps, jobs, view, () => (spend && images.cloudDailyBudgetUsd !== undefined ? spend.spentTodayUsd >= images.cloudDailyBudgetUsd : false));

  service.addEndpoint('images-generate', {
    subject: Subjects.imagesGenerate.subject, queue: 'router', schema: Subjects.imagesGenerate.schema,
    // The answer comes from whoever ends the job; nothing is sent from here unless the request is refused.
    handler: async ({ msg, payload }) => { await submitter.submit(msg, payload, msg.reply); },
  });
  service.addEndpoint('images-submit', {
    subject: Subjects.imagesSubmit.subject, queue: 'router', schema: Subjects.imagesSubmit.schema,
    handler: async ({ msg, payload }) => respondJson(msg, await submitter.submit(msg, payload)),
  });
  service.addEndpoint('images-status', {
    subject: Subjects.imagesStatus.subject, queue: 'router', schema: null,
    handler: async ({ msg }) => {
      const found = await jobs.get(jobIdOf(msg.subject));
      if (!found) throw new GatewayError('not_found', `no image job '${jobIdOf(msg.subject)}' (it may have expired)`);
      respondJson(msg, publicRecord(found.record));
    },
  });
  service.addEndpoint('images-cancel', {
    subject: Subjects.imagesCancel.subject, queue: 'router', schema: Subjects.imagesCancel.schema,
    handler: async ({ msg, payload }) => respondJson(msg, await cancelJob(deps, jobs, jobIdOf(msg.subject), payload?.ifQueued === true)),
  });
  service.addEndpoint('images-list', {
    subject: Subjects.imagesList.subject, queue: 'router', schema: Subjects.imagesList.schema,
    handler: async ({ msg, payload }) => respondJson(msg, { jobs: (await jobs.list(payload?.limit ?? 50, payload?.state)).map(publicRecord) }),
  });

  const started = Math.floor(Date.now() / 1000);
  return {
    withModels(list) {
      const data = [...list.data];
      const seen = new Set(data.map((m) => m.id));
      const add = (entry: ModelEntry & Record<string, unknown>): void => { if (!seen.has(entry.id)) { seen.add(entry.id); data.push(entry); } };
      if (comfy.up()) {
        for (const m of Object.values(images.models)) add({ id: m.name, object: 'model', created: started, owned_by: 'comfyui', type: 'image', kind: m.kind, ...(m.description && { description: m.description }) });
      }
      if (view.openai) for (const id of images.cloudModels) add({ id, object: 'model', created: started, owned_by: 'openai', type: 'image', kind: 'text-to-image' });
      for (const [alias, candidates] of Object.entries(images.aliases)) {
        const first = candidates.find((c) => (c.startsWith('comfyui/') ? comfy.up() : view.openai));
        if (first) add({ id: alias, object: 'model', created: started, owned_by: first.split('/')[0]!, type: 'image', alias_of: candidates });
      }
      return { ...list, data };
    },
    async stop() {
      comfy.stop();
      await spend?.stop();
      await ledger?.stop();
    },
  };
}

/** `images.jobs.<id>.status` → `<id>`. */
function jobIdOf(subject: string): string {
  return subject.split('.')[2] ?? '';
}

/** A record as the job API shows it: without the requesters' inboxes. */
function publicRecord(record: ImageJobRecord): Omit<ImageJobRecord, 'replyTo' | 'progressTo'> {
  const { replyTo: _r, progressTo: _p, ...shown } = record;
  return shown;
}

class Submitter {
  readonly #deps: ImagesDeps;
  readonly #jobs: ImageJobStore;
  readonly #view: ImageBackendView;
  readonly #cloudBudgetReached: () => boolean;

  constructor(deps: ImagesDeps, jobs: ImageJobStore, view: ImageBackendView, cloudBudgetReached: () => boolean) {
    this.#deps = deps;
    this.#jobs = jobs;
    this.#view = view;
    this.#cloudBudgetReached = cloudBudgetReached;
  }

  async submit(msg: Msg, request: ImageRequest, replyTo?: string): Promise<ImageSubmitReply> {
    const { config, nc, events } = this.#deps;
    const headers = msg.headers;
    const requestId = headers?.get(H.requestId) || newRequestId();
    const key = this.#keyOf(headers);
    const localOnly = config.routing.localOnly || headers?.get(H.route) === 'local-only' || key?.localOnly === true;
    const kind = request.images?.length ? 'edit' : 'generate';
    const resolution = resolveImageModel(request.model, config.images);
    const keyBudget = key ? this.#deps.usage?.exhausted(key) : undefined;
    const choice = planImage(resolution, this.#view, { localOnly, ...(key && { key }), ...(keyBudget && { keyBudget }), cloudBudgetReached: this.#cloudBudgetReached() });
    const params = jobParameters(request, choice, config.images, kind);
    const responseFormat = request.response_format ?? 'b64_json';
    const stream = request.stream === true;
    const progressTo = headers?.get(H.replyTo) || undefined;
    const submittedAt = new Date().toISOString();
    const id = newImageJobId();
    const job: ImageJob = {
      id, kind, backend: choice.backend, model: choice.model, requestedModel: resolution.requested, routeReason: choice.routeReason,
      prompt: request.prompt, n: params.n, outputFormat: params.outputFormat, responseFormat, partialImages: stream ? request.partial_images ?? 0 : 0,
      requestId, submittedAt,
      ...(request.negative_prompt != null && { negativePrompt: request.negative_prompt }),
      ...(params.width !== undefined && { width: params.width }), ...(params.height !== undefined && { height: params.height }),
      ...(params.size !== undefined && { size: params.size }), ...(request.seed != null && { seed: request.seed }),
      ...(params.steps !== undefined && { steps: params.steps }), ...(request.strength != null && { strength: request.strength }),
      ...(choice.backend === 'openai' && { options: openAIOptions(request) }),
      ...(request.images && { images: request.images }), ...(request.mask && { mask: request.mask }),
      ...(replyTo && { replyTo }), ...(progressTo && { progressTo }),
      ...(headers?.get(H.traceparent) && { traceparent: headers.get(H.traceparent) }),
      ...(key && { apiKey: key.name }),
    };
    const record: ImageJobRecord = {
      id, state: 'queued', kind, backend: job.backend, model: job.model, requestedModel: job.requestedModel, routeReason: job.routeReason, n: job.n,
      requestId, submittedAt, attempts: 0, responseFormat, outputFormat: job.outputFormat,
      ...(job.width !== undefined && { width: job.width }), ...(job.height !== undefined && { height: job.height }),
      ...(key && { apiKey: key.name }), ...(replyTo && { replyTo }), ...(progressTo && { progressTo }),
    };
    // The record first: the worker that takes the job finds it.
    await this.#jobs.create(record);
    const position = await queuedAhead(nc, job.backend);
    try {
      const ack = await jetstream(nc).publish(imageJobSubject(job.backend), encodeJson(job), { msgID: id, timeout: 5000 });
      if (ack.duplicate) throw new GatewayError('internal_error', `image job ${id} was already queued`);
    } catch (err) {
      // Not queued: the record must not say it is.
      const error = { code: 'backend_unavailable', status: 503, message: 'the image job could not be queued (JetStream unavailable); retry', reason: 'queue' };
      await this.#jobs.update(id, (r) => (r.state === 'queued' ? { ...r, state: 'failed', error, finishedAt: new Date().toISOString() } : undefined)).catch(() => undefined);
      throw err instanceof GatewayError ? err : new GatewayError('backend_unavailable', error.message, { cause: err });
    }
    await events.publish('imageSubmitted', {
      jobId: id, model: job.model, backend: job.backend, requestedModel: job.requestedModel, kind, n: job.n, requestId, routeReason: job.routeReason,
      ...(key && { apiKey: key.name }), at: submittedAt,
    }, { subject: imageEventSubject('submitted', id), msgId: `${id}:submitted` });
    return {
      id, state: 'queued', model: job.model, backend: job.backend, routeReason: job.routeReason, ...(position !== undefined && { position }),
      stream, partialImages: job.partialImages, responseFormat, outputFormat: job.outputFormat, ...(job.size && { size: job.size }),
      ...(job.width && job.height && { size: `${job.width}x${job.height}` }), created: Math.floor(Date.parse(submittedAt) / 1000), submittedAt,
    };
  }

  /** The key the request presented, verified as for chat (keys.ts). */
  #keyOf(headers: MsgHeaders | undefined): KeyRecord | undefined {
    return keyOfRequest(headers, this.#deps.keys, scriptsScopeOf(this.#deps.config));
  }
}

/** OpenAI's own options, passed on as given (only plain values). */
function openAIOptions(request: ImageRequest): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const k of ['quality', 'style', 'background', 'moderation', 'output_compression', 'user'] as const) {
    const v = request[k];
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out[k] = v;
  }
  return out;
}

/** Jobs of a backend in the work queue now (waiting or running): how many are ahead of a new one. */
async function queuedAhead(nc: NatsConnection, backend: 'comfyui' | 'openai'): Promise<number | undefined> {
  try {
    const info = await (await jetstreamManager(nc)).streams.info('IMAGE_JOBS', { subjects_filter: imageJobSubject(backend) });
    return (info.state.subjects as Record<string, number> | undefined)?.[imageJobSubject(backend)] ?? 0;
  } catch {
    return undefined;
  }
}

/**
 * `images.jobs.<id>.cancel`: a queued job is cancelled here at once (compare-and-set: a worker that took it
 * in the same moment finds it cancelled and drops it); a running one is marked, and its worker, which
 * hears the same message, interrupts it. `ifQueued` (a client that hung up) leaves a running job alone.
 */
async function cancelJob(deps: ImagesDeps, jobs: ImageJobStore, id: string, ifQueued: boolean): Promise<{ id: string; state: ImageJobRecord['state']; cancelRequested: boolean }> {
  const finishedAt = new Date().toISOString();
  const result = await jobs.update(id, (r) => {
    if (r.state === 'queued') return { ...r, state: 'cancelled', finishedAt };
    if (r.state === 'running' && !ifQueued && !r.cancelRequested) return { ...r, cancelRequested: true };
    return undefined;
  });
  if (!result) throw new GatewayError('not_found', `no image job '${id}' (it may have expired)`);
  const { record } = result;
  if (result.changed && record.state === 'cancelled') {
    await deps.events.publish('imageCancelled', { jobId: id, model: record.model, backend: record.backend, phase: 'queued', ...(record.apiKey && { apiKey: record.apiKey }), at: finishedAt },
      { subject: imageEventSubject('cancelled', id), msgId: `${id}:cancelled` });
    sendImageJobEnd(deps.nc, record, { error: imageJobError(record) });
  }
  return { id, state: record.state, cancelRequested: record.cancelRequested === true };
}

/**
 * Whether ComfyUI is there: its worker is asked (`worker.comfyui.models`) every discovery interval,
 * and every second while nothing is known yet. No worker, or a worker that cannot reach ComfyUI, means
 * the lab's workflows are skipped (an alias falls back to the cloud where allowed).
 */
class ComfyWatch {
  readonly #nc: NatsConnection;
  readonly #config: LabConfig;
  readonly #log: Logger;
  #last: { at: number; reply: ImageWorkerModels } | undefined;
  #timer: NodeJS.Timeout | undefined;
  #warned = false;

  constructor(nc: NatsConnection, config: LabConfig, log: Logger) {
    this.#nc = nc;
    this.#config = config;
    this.#log = log;
  }

  up(): boolean {
    const fresh = this.#last && Date.now() - this.#last.at < Math.max(3 * this.#config.discoveryIntervalMs, 5000);
    return Boolean(fresh && this.#last!.reply.reachable);
  }

  start(): void {
    if (!this.#config.images.comfyui) return;
    let due = 0;
    const tick = (): void => {
      if (Date.now() < due && this.#last) return;
      due = Date.now() + this.#config.discoveryIntervalMs;
      void this.#ask();
    };
    tick();
    this.#timer = setInterval(tick, Math.min(1000, this.#config.discoveryIntervalMs));
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  async #ask(): Promise<void> {
    try {
      const reply = await this.#nc.request(Subjects.imageWorkerModels.subject, undefined, { timeout: 5000 });
      this.#last = { at: Date.now(), reply: checkWorkerModels.parse(reply.json()) };
      this.#warned = false;
    } catch (err) {
      if (!this.#warned) this.#log.warn({ err: (err as Error).message }, 'ComfyUI worker not answering discovery');
      this.#warned = true;
    }
  }
}

/** Today's cloud image spend (UTC day), from the `images.completed` events (replayed from midnight at start). */
async function followImageSpend(nc: NatsConnection, log: Logger): Promise<{ readonly spentTodayUsd: number; stop(): Promise<void> }> {
  let day = '';
  let spent = 0;
  const today = (): string => new Date().toISOString().slice(0, 10);
  const consumer = await retryJetStreamApi(() => jetstream(nc).consumers.get('IMAGES', {
    filter_subjects: 'images.completed.*', deliver_policy: DeliverPolicy.StartTime, opt_start_time: `${today()}T00:00:00Z`,
  }));
  const messages = await consumer.consume();
  const check = eventValidator('images.completed.x')!;
  const loop = (async () => {
    for await (const m of messages) {
      try {
        const event = check.parse(m.json()) as ImageCompleted;
        if (event.backend !== 'openai' || !event.costUsd) continue;
        if (event.at.slice(0, 10) !== today()) continue;
        if (day !== today()) { day = today(); spent = 0; }
        spent += event.costUsd;
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'image spend: invalid images.completed skipped');
      }
    }
  })();
  return {
    get spentTodayUsd() { return day === today() ? spent : 0; },
    async stop() { await messages.close(); await loop; },
  };
}

/** Cloud image tokens (gpt-image-* reports them) go into the key's usage, as chat tokens do (one durable consumer for all replicas). */
async function followImageLedger(nc: NatsConnection, usage: KV, log: Logger): Promise<{ stop(): Promise<void> }> {
  return consumeEvents({
    nc, log, stream: 'IMAGES', durable: 'router-images-ledger', filterSubjects: ['images.completed.*'],
    handler: async (_subject, payload) => {
      const event = payload as ImageCompleted;
      const tokens = (event.inputTokens ?? 0) + (event.outputTokens ?? 0);
      if (!event.apiKey || event.backend !== 'openai' || tokens === 0) return;
      const { day, month } = usageKeys(event.apiKey, new Date(event.at));
      for (const k of [day, month]) await addUsage(usage, k, tokens);
    },
  });
}
