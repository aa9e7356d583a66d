import multipart from '@fastify/multipart';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import {
  GatewayError, H, ImageFiles, ImageStreamFrame, Subjects, childTraceparent, createHeaders, errorFromReply, imageJobCancelSubject, imageJobError,
  imageJobResult, imageJobStatusSubject, signFileUrl, verifyFileUrl,
  type ImageJobRecord, type ImageJobResult, type ImagePartialFrame, type ImageSubmitReply, type KeyRecord, type Msg,
} from '@homelab/bus';
import type { LabConfig } from '@homelab/config';
import type { Logger } from '@homelab/logging';
import type { IngressBus } from './app.ts';
import { wantsLocalOnly } from './relay.ts';

/*
 * OpenAI's images API at the edge (docs/images.md): POST /v1/images/generations and /v1/images/edits
 * become jobs (`images.jobs.submit`, the router decides and queues), and the request follows its job
 * on its own inbox: progress, partial images (SSE when `stream: true`), keepalives, then the result,
 * whose images are read from the object store `images` as b64_json or served at
 * GET /v1/images/files/{id}. A client that hangs up cancels its job if it has not started; a
 * running one finishes into the object store (or is cancelled too: `images.jobs.finishOnHangup`).
 */

export interface ImagesPluginOptions {
  config: LabConfig;
  log: Logger;
  bus: IngressBus;
  /** Keys are on: file URLs are signed, and a file is readable only with the key that made it. */
  keysOn: boolean;
}

const SSE_KEEPALIVE = Buffer.from(': keepalive\n\n');
/** Image bytes that may be an input: PNG, JPEG, WebP by their first bytes (the part's declared type is the client's say). */
const MAGIC: [string, (b: Buffer) => boolean][] = [
  ['image/png', (b) => b.length > 8 && b.readUInt32BE(0) === 0x89504e47],
  ['image/jpeg', (b) => b.length > 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff],
  ['image/webp', (b) => b.length > 12 && b.toString('latin1', 0, 4) === 'RIFF' && b.toString('latin1', 8, 12) === 'WEBP'],
];

/** A signed file URL needs no key (an `<img src>` cannot send one): the route itself checks the signature. */
export function isSignedImageFileUrl(url: string): boolean {
  return url.startsWith('/v1/images/files/') && /[?&]sig=/.test(url) && /[?&]expires=/.test(url);
}

export const imagesPlugin: FastifyPluginAsync<ImagesPluginOptions> = async (app, options) => {
  const { config, log, bus } = options;
  let files: Promise<ImageFiles> | undefined;
  const openFiles = (): Promise<ImageFiles> => {
    if (!bus.nc) throw new GatewayError('backend_unavailable', 'the gateway is not connected to its message bus yet; retry shortly');
    files ??= ImageFiles.open(bus.nc, { replicas: config.nats.replicas, ttlHours: config.images.files.ttlHours }).catch((err: unknown) => { files = undefined; throw err; });
    return files;
  };

  await app.register(multipart, {
    limits: { fileSize: config.gateway.bodyLimitBytes, files: 17, fields: 40, fieldSize: 64 * 1024, parts: 60 },
  });

  app.post('/v1/images/generations', async (request, reply) => {
    const body = request.body instanceof Buffer ? request.body : Buffer.alloc(0);
    await runJob(request, reply, body, 'generation');
  });

  app.post('/v1/images/edits', async (request, reply) => {
    if (!request.isMultipart()) {
      // OpenAI's JSON form of edits (`images: [{image_url}]`): the router validates it as it is.
      const body = request.body instanceof Buffer ? request.body : Buffer.alloc(0);
      await runJob(request, reply, body, 'edit');
      return;
    }
    const uploaded: string[] = [];
    let body: Buffer;
    try {
      body = Buffer.from(JSON.stringify(await readEditForm(request, keyOf(request), uploaded)));
    } catch (err) {
      await dropInputs(uploaded);
      sendError(reply, asGatewayError(err, 'the edit request could not be read'), requestIdOf(request));
      return;
    }
    const submitted = await runJob(request, reply, body, 'edit');
    // Inputs of a job that was never accepted are of no use; a job's own worker removes them when it ends.
    if (!submitted) await dropInputs(uploaded);
  });

  app.get('/v1/images/files/:id', async (request, reply) => {
    try {
      await serveFile(request, reply);
    } catch (err) {
      sendError(reply, asGatewayError(err, 'the image could not be read'), requestIdOf(request));
    }
  });

  async function serveFile(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const { id } = request.params as { id: string };
    const requestId = requestIdOf(request);
    const store = await openFiles();
    const info = await store.info(id);
    const notFound = (): void => sendError(reply, new GatewayError('not_found', `No image file '${id.slice(0, 80)}' (it may have expired)`), requestId);
    if (!info) return notFound();
    const meta = info.metadata ?? {};
    if (options.keysOn) {
      const query = request.query as { expires?: string; sig?: string };
      const signed = query.sig !== undefined && query.expires !== undefined && meta['token'] !== undefined
        && verifyFileUrl(id, meta['token'], Number(query.expires), query.sig);
      const key = keyOf(request);
      // Without a valid signature, only the key that made the image may read it; to anyone else it does not exist.
      if (!signed && !(key && (!meta['apiKey'] || meta['apiKey'] === key.name))) {
        if (query.sig !== undefined && !key) return sendError(reply, new GatewayError('forbidden', 'this image URL is not valid (expired, or not signed for this file)'), requestId);
        return notFound();
      }
    }
    const data = await store.store.getBlob(id);
    if (!data) return notFound();
    reply.header('x-request-id', requestId).header('content-type', meta['contentType'] ?? 'image/png')
      .header('cache-control', 'private, max-age=3600').header('content-length', data.byteLength).send(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  }

  /**
   * Submits a job and answers the HTTP request with its outcome. Resolves to whether the job was
   * accepted (its inputs are then its worker's to remove).
   */
  async function runJob(request: FastifyRequest, reply: FastifyReply, body: Buffer, operation: 'generation' | 'edit'): Promise<boolean> {
    const requestId = requestIdOf(request);
    const { nc, mux } = bus;
    if (!nc || !mux || !bus.connected) {
      sendError(reply, new GatewayError('backend_unavailable', 'the gateway is not connected to its message bus yet; retry shortly'), requestId);
      return false;
    }
    const follower = new JobFollower();
    const inbox = mux.open((msg) => follower.push({ kind: 'message', msg }), (reason) => {
      inbox.touch(config.gateway.silenceTimeoutMs);
      follower.push({ kind: reason === 'timeout' ? 'silence' : 'disconnected' });
    }, config.gateway.silenceTimeoutMs);
    const headers = createHeaders();
    headers.set(H.requestId, requestId);
    headers.set(H.traceparent, childTraceparent(request.headers['traceparent'] as string | undefined));
    headers.set(H.replyTo, inbox.subject);
    if (request.presentedKey) headers.set(H.apiKey, request.presentedKey);
    if (wantsLocalOnly(request.headers['x-homelab-route'])) headers.set(H.route, 'local-only');

    // Listening for a hang-up from the start: a client gone while its job is being submitted still cancels it.
    const hangup = (): void => { if (!reply.raw.writableFinished) follower.push({ kind: 'hangup' }); };
    reply.raw.once('close', hangup);
    let job: ImageSubmitReply;
    try {
      const answer = await mux.request(nc, Subjects.imagesSubmit.subject, body, { headers, timeoutMs: 10_000 });
      const error = errorFromReply(answer.headers, answer.data);
      if (error) {
        inbox.close();
        reply.raw.off('close', hangup);
        sendError(reply, error, requestId);
        return false;
      }
      job = JSON.parse(Buffer.from(answer.data).toString('utf8')) as ImageSubmitReply;
    } catch (err) {
      inbox.close();
      reply.raw.off('close', hangup);
      sendError(reply, asGatewayError(err, 'the image job could not be submitted'), requestId);
      return false;
    }

    reply.header('x-request-id', requestId).header('x-homelab-job-id', job.id).header('x-homelab-backend', job.backend)
      .header('x-homelab-model', job.model).header('x-homelab-route-reason', job.routeReason);
    const deadline = setTimeout(() => follower.push({ kind: 'deadline' }), config.images.jobs.waitTimeoutMs);
    const sse = job.stream ? new SseWriter(reply, operation, job) : undefined;
    try {
      const outcome = await follow(job, follower, sse);
      if (outcome.kind === 'gone') return true;
      if (outcome.kind === 'error') {
        if (sse) sse.error(outcome.error);
        else sendError(reply, outcome.error, requestId);
        return true;
      }
      const answer = await buildAnswer(request, job, outcome.result, sse !== undefined);
      if (sse) sse.completed(answer.images, outcome.result);
      else reply.code(200).header('content-type', 'application/json').send(JSON.stringify(answer.body));
    } catch (err) {
      const error = asGatewayError(err, 'the image job\'s outcome could not be read');
      if (error.code === 'internal_error') log.error({ err, requestId, job: job.id }, 'image request failed');
      if (sse) sse.error(error);
      else if (!reply.sent) sendError(reply, error, requestId);
    } finally {
      clearTimeout(deadline);
      reply.raw.off('close', hangup);
      inbox.close();
    }
    return true;
  }

  /** Waits for the job's end on its inbox; silence means asking its record (the job may wait in the queue a long time). */
  async function follow(job: ImageSubmitReply, follower: JobFollower, sse: SseWriter | undefined): Promise<{ kind: 'result'; result: ImageJobResult } | { kind: 'error'; error: GatewayError } | { kind: 'gone' }> {
    for (;;) {
      const event = await follower.next();
      switch (event.kind) {
        case 'hangup':
          cancel(job.id, config.images.jobs.finishOnHangup);
          return { kind: 'gone' };
        case 'deadline':
          cancel(job.id, false);
          return { kind: 'error', error: new GatewayError('timeout', `the image job did not finish within ${config.images.jobs.waitTimeoutMs} ms (images.jobs.waitTimeoutMs); it was cancelled`) };
        case 'silence':
        case 'disconnected': {
          sse?.keepalive();
          const record = await askStatus(job.id);
          if (record && record.state === 'completed') return { kind: 'result', result: imageJobResult(record) };
          if (record && (record.state === 'failed' || record.state === 'cancelled')) return { kind: 'error', error: imageJobError(record) };
          break;
        }
        case 'message': {
          const { msg } = event;
          const frame = msg.headers?.get(H.stream);
          if (frame === ImageStreamFrame.keepalive || frame === ImageStreamFrame.progress) { sse?.keepalive(); break; }
          if (frame === ImageStreamFrame.partial) { sse?.partial(JSON.parse(Buffer.from(msg.data).toString('utf8')) as ImagePartialFrame); break; }
          const error = errorFromReply(msg.headers, msg.data);
          if (error) return { kind: 'error', error };
          return { kind: 'result', result: JSON.parse(Buffer.from(msg.data).toString('utf8')) as ImageJobResult };
        }
      }
    }
  }

  async function askStatus(id: string): Promise<ImageJobRecord | undefined> {
    const { nc, mux } = bus;
    if (!nc || !mux) return undefined;
    try {
      const answer = await mux.request(nc, imageJobStatusSubject(id), undefined, { timeoutMs: 3000 });
      if (errorFromReply(answer.headers, answer.data)) return undefined;
      return JSON.parse(Buffer.from(answer.data).toString('utf8')) as ImageJobRecord;
    } catch {
      return undefined;
    }
  }

  function cancel(id: string, ifQueued: boolean): void {
    const { nc, mux } = bus;
    if (!nc || !mux || nc.isClosed()) return;
    mux.request(nc, imageJobCancelSubject(id), Buffer.from(JSON.stringify({ ifQueued })), { timeoutMs: 5000 })
      .catch((err: unknown) => log.warn({ job: id, err: (err as Error).message }, 'could not cancel the image job of a client that went away'));
  }

  /** The OpenAI answer: each image as b64_json (read from the object store) or as a signed URL. */
  async function buildAnswer(request: FastifyRequest, job: ImageSubmitReply, result: ImageJobResult, stream: boolean): Promise<{ body: Record<string, unknown>; images: { b64: string; ref: ImageJobResult['data'][number] }[] }> {
    const store = await openFiles();
    const wantB64 = stream || job.responseFormat === 'b64_json';
    const images: { b64: string; ref: ImageJobResult['data'][number] }[] = [];
    const data: Record<string, unknown>[] = [];
    const expires = Math.floor(Date.now() / 1000) + config.images.files.urlTtlSeconds;
    const base = config.images.files.baseUrl ?? `${request.protocol}://${request.host}`;
    for (const ref of result.data) {
      const entry: Record<string, unknown> = {};
      if (wantB64) {
        const file = ref.b64_json ? undefined : await store.get(ref.file_id);
        const b64 = ref.b64_json ?? (file ? Buffer.from(file.data.buffer, file.data.byteOffset, file.data.byteLength).toString('base64') : undefined);
        if (b64 === undefined) throw new GatewayError('internal_error', `the image ${ref.file_id} of job ${job.id} is missing from the object store`);
        entry['b64_json'] = b64;
        images.push({ b64, ref });
      } else {
        const info = await store.info(ref.file_id);
        const token = info?.metadata?.['token'];
        if (!token) throw new GatewayError('internal_error', `the image ${ref.file_id} of job ${job.id} is missing from the object store`);
        entry['url'] = `${base}/v1/images/files/${ref.file_id}?expires=${expires}&sig=${signFileUrl(ref.file_id, token, expires)}`;
      }
      if (ref.revised_prompt) entry['revised_prompt'] = ref.revised_prompt;
      data.push(entry);
    }
    const first = result.data[0];
    return {
      images,
      body: {
        created: result.created, data,
        output_format: job.outputFormat,
        ...(first?.width && first.height ? { size: `${first.width}x${first.height}` } : job.size ? { size: job.size } : {}),
        ...(result.usage && { usage: openAIUsage(result.usage) }),
      },
    };
  }

  async function dropInputs(ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    const store = await openFiles().catch(() => undefined);
    for (const id of ids) await store?.delete(id);
  }

  /** The multipart edit form, as the JSON the job API takes; its images go to the object store first. */
  async function readEditForm(request: FastifyRequest, key: KeyRecord | undefined, uploaded: string[]): Promise<Record<string, unknown>> {
    const store = await openFiles();
    const fields: Record<string, string> = {};
    const images: { file_id: string }[] = [];
    let mask: { file_id: string } | undefined;
    for await (const part of request.parts()) {
      if (part.type === 'file') {
        const data = await part.toBuffer();
        const name = part.fieldname;
        if (name !== 'image' && name !== 'image[]' && name !== 'mask') throw new GatewayError('invalid_request', `unexpected file field '${name.slice(0, 40)}' (image, image[] or mask)`, { param: name.slice(0, 40) });
        const contentType = MAGIC.find(([, is]) => is(data))?.[0];
        if (!contentType) throw new GatewayError('invalid_request', `'${name}' must be a PNG, JPEG or WebP image`, { param: name === 'mask' ? 'mask' : 'image' });
        const ref = await store.put(data, { role: 'input', jobId: 'upload', contentType, ...(key && { apiKey: key.name }) });
        uploaded.push(ref.id);
        if (name === 'mask') mask = { file_id: ref.id };
        else images.push({ file_id: ref.id });
      } else {
        fields[part.fieldname] = String(part.value);
      }
    }
    const body: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(fields)) body[name] = fieldValue(name, value);
    if (images.length > 0) body['images'] = images;
    if (mask) body['mask'] = mask;
    if (!body['images']) throw new GatewayError('invalid_request', "an edit needs an 'image' file", { param: 'image' });
    return body;
  }
};

/** Form fields are text: the numeric and boolean ones become numbers and booleans, as in the JSON API. */
function fieldValue(name: string, value: string): unknown {
  if (['n', 'seed', 'steps', 'partial_images', 'output_compression'].includes(name)) {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n)) throw new GatewayError('invalid_request', `'${name}' must be a number, not '${value.slice(0, 40)}'`, { param: name });
    return n;
  }
  if (name === 'strength') return Number(value);
  if (name === 'stream') return value === 'true' || value === '1';
  return value;
}

type FollowEvent =
  | { kind: 'message'; msg: Msg }
  | { kind: 'silence' }
  | { kind: 'disconnected' }
  | { kind: 'hangup' }
  | { kind: 'deadline' };

/** The events of one followed job, in order. */
class JobFollower {
  readonly #queue: FollowEvent[] = [];
  #wake: (() => void) | undefined;

  push(event: FollowEvent): void {
    this.#queue.push(event);
    this.#wake?.();
  }

  async next(): Promise<FollowEvent> {
    while (this.#queue.length === 0) await new Promise<void>((r) => { this.#wake = r; });
    this.#wake = undefined;
    return this.#queue.shift()!;
  }
}

/** OpenAI's image streaming events (`image_generation.*`, `image_edit.*`) on an SSE response. */
class SseWriter {
  readonly #reply: FastifyReply;
  readonly #prefix: string;
  readonly #job: ImageSubmitReply;
  #started = false;

  constructor(reply: FastifyReply, operation: 'generation' | 'edit', job: ImageSubmitReply) {
    this.#reply = reply;
    this.#prefix = operation === 'edit' ? 'image_edit' : 'image_generation';
    this.#job = job;
  }

  keepalive(): void {
    this.#start();
    this.#write(SSE_KEEPALIVE);
  }

  partial(frame: ImagePartialFrame): void {
    this.#event(`${this.#prefix}.partial_image`, {
      b64_json: frame.b64_json, created_at: Math.floor(Date.now() / 1000), partial_image_index: frame.index,
      ...this.#shape(frame.width && frame.height ? `${frame.width}x${frame.height}` : undefined), output_format: frame.output_format,
    });
  }

  completed(images: { b64: string; ref: ImageJobResult['data'][number] }[], result: ImageJobResult): void {
    for (const { b64, ref } of images) {
      this.#event(`${this.#prefix}.completed`, {
        b64_json: b64, created_at: result.created, ...this.#shape(ref.width && ref.height ? `${ref.width}x${ref.height}` : undefined),
        usage: openAIUsage(result.usage),
      });
    }
    this.#reply.raw.end();
  }

  error(error: GatewayError): void {
    this.#event('error', { ...error.toOpenAI() });
    this.#reply.raw.end();
  }

  #shape(size: string | undefined): Record<string, unknown> {
    return { size: size ?? this.#job.size ?? 'auto', quality: 'auto', background: 'auto', output_format: this.#job.outputFormat };
  }

  #event(type: string, data: Record<string, unknown>): void {
    this.#start();
    this.#write(Buffer.from(`event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`));
  }

  #start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#reply.hijack();
    this.#reply.raw.writeHead(200, {
      ...(this.#reply.getHeaders() as Record<string, string>),
      'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no',
    });
  }

  #write(chunk: Buffer): void {
    if (!this.#reply.raw.writableEnded && !this.#reply.raw.destroyed) this.#reply.raw.write(chunk);
  }
}

function openAIUsage(usage: ImageJobResult['usage']): Record<string, unknown> {
  const input = usage?.input_tokens ?? 0;
  const output = usage?.output_tokens ?? 0;
  return { input_tokens: input, input_tokens_details: { image_tokens: 0, text_tokens: input }, output_tokens: output, total_tokens: input + output };
}

function keyOf(request: FastifyRequest): KeyRecord | undefined {
  return request.apiKey;
}

function requestIdOf(request: FastifyRequest): string {
  return request.id;
}

function asGatewayError(err: unknown, fallback: string): GatewayError {
  if (err instanceof GatewayError) return err;
  const e = err as { code?: string; statusCode?: number; message?: string };
  if (e.code === 'FST_REQ_FILE_TOO_LARGE' || e.code === 'FST_FILES_LIMIT' || e.code === 'FST_PARTS_LIMIT' || e.code === 'FST_FIELDS_LIMIT') {
    return new GatewayError('body_too_large', `the edit form is too large (${e.message ?? e.code})`);
  }
  if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) return new GatewayError('invalid_request', `${fallback}: ${e.message ?? 'malformed'}`);
  return new GatewayError('internal_error', fallback, { cause: err });
}

function sendError(reply: FastifyReply, error: GatewayError, requestId: string): void {
  if (reply.sent || reply.raw.headersSent) return;
  reply.code(error.status).header('x-request-id', requestId).header('content-type', 'application/json');
  if (error.retryAfterMs !== undefined) reply.header('retry-after', String(Math.max(1, Math.ceil(error.retryAfterMs / 1000))));
  reply.send(JSON.stringify(error.toOpenAI()));
}

