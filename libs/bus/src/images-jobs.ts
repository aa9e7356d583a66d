import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { Objm, type ObjectInfo, type ObjectStore } from '@nats-io/obj';
import { nuid, type NatsConnection } from '@nats-io/transport-node';
import { ErrorCodes, GatewayError } from './errors.ts';
import { H, createHeaders } from './headers.ts';
import {
  IMAGE_JOBS_BUCKET, IMAGES_BUCKET, ImageJobRecordSchema, type ImageFileRef, type ImageJobRecord, type ImageJobResult,
} from './images-schemas.ts';
import { createKvBucket, retryJetStreamApi } from './jetstream-api.ts';
import { CorruptObjectError, readObject } from './object-read.ts';
import { encodeJson, validator } from './schemas.ts';
import { errorHeaders } from './service.ts';

/*
 * The two stores of image jobs, shared by the router, the workers and the ingress:
 * - `image-jobs` (KV): one record per job, changed only by compare-and-set, so two writers (a worker
 *   starting a job, a cancel) can never both win: whoever moves a job to an end state owns its event
 *   and its answer;
 * - `images` (object store): input images and generated ones, under unguessable ids, with a TTL.
 */

const checkRecord = validator(ImageJobRecordSchema);
const encoder = new TextEncoder();

/** `imgjob_…`: a NUID (unique, cheap). Job ids are not secrets: the files they make are. */
export function newImageJobId(): string {
  return `imgjob_${nuid.next()}`;
}

/** `img_` + 24 random bytes: a file id nobody can guess, which is what makes a file's URL private. */
export function newImageFileId(): string {
  return `img_${randomBytes(24).toString('base64url')}`;
}

/** Job records in the KV bucket `image-jobs`. */
export class ImageJobStore {
  readonly kv: KV;

  private constructor(kv: KV) {
    this.kv = kv;
  }

  /** Opens the bucket, making it when missing (every user of it may be the first to start). */
  static async open(nc: NatsConnection, options: { replicas: number; keepHours: number }): Promise<ImageJobStore> {
    const kv = await createKvBucket(nc, IMAGE_JOBS_BUCKET, {
      replicas: options.replicas, history: 1, ttl: options.keepHours * 3600_000, description: 'Image jobs: state, progress and outputs, one record per job',
    });
    return new ImageJobStore(kv);
  }

  async get(id: string): Promise<{ record: ImageJobRecord; revision: number } | undefined> {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(id)) return undefined;
    const entry = await this.kv.get(id);
    if (!entry || entry.operation !== 'PUT') return undefined;
    return { record: checkRecord.parse(entry.json()), revision: entry.revision };
  }

  async create(record: ImageJobRecord): Promise<void> {
    await this.kv.create(record.id, encoder.encode(JSON.stringify(record)));
  }

  /**
   * Changes a record with compare-and-set, reading again when another writer got there first.
   * `change` returns the new record, or undefined to leave it as it is. Resolves to what was written
   * (`changed: true`) or to the record as found.
   */
  async update(id: string, change: (current: ImageJobRecord) => ImageJobRecord | undefined): Promise<{ record: ImageJobRecord; changed: boolean } | undefined> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const found = await this.get(id);
      if (!found) return undefined;
      const next = change(found.record);
      if (!next) return { record: found.record, changed: false };
      try {
        await this.kv.update(id, encoder.encode(JSON.stringify(next)), found.revision);
        return { record: next, changed: true };
      } catch (err) {
        if (!/wrong last sequence|key exists/i.test((err as Error).message)) throw err;
      }
    }
    throw new GatewayError('internal_error', `could not update image job ${id}: too many concurrent writers`);
  }

  /** The newest records first (by submission time), at most `limit`. */
  async list(limit: number, state?: ImageJobRecord['state']): Promise<ImageJobRecord[]> {
    const records: ImageJobRecord[] = [];
    for await (const key of await this.kv.keys()) {
      const found = await this.get(key).catch(() => undefined);
      if (found && (!state || found.record.state === state)) records.push(found.record);
    }
    return records.sort((a, b) => b.submittedAt.localeCompare(a.submittedAt)).slice(0, limit);
  }
}

/** What the object store keeps beside an image's bytes. */
export interface ImageFileMeta {
  contentType: string;
  jobId: string;
  /** The API key (its name) whose request made or uploaded it: only that key may read it (docs/images.md). */
  apiKey?: string;
  width?: number;
  height?: number;
  /** `input` (an upload for an edit) or `output`. */
  role: 'input' | 'output';
}

/**
 * The object store bucket `images`: files under unguessable ids, deleted after `ttlHours`.
 * Files are read with `read`/`get` (message gets, see object-read.ts), never with the store's
 * `get`/`getBlob`, which leave a consumer on the server for every read.
 */
export class ImageFiles {
  readonly store: ObjectStore;
  readonly #jsm: JetStreamManager;

  private constructor(store: ObjectStore, jsm: JetStreamManager) {
    this.store = store;
    this.#jsm = jsm;
  }

  static async open(nc: NatsConnection, options: { replicas: number; ttlHours: number }): Promise<ImageFiles> {
    const store = await retryJetStreamApi(() => new Objm(nc).create(IMAGES_BUCKET, {
      replicas: options.replicas, ttl: options.ttlHours * 3600 * 1e9, description: 'Generated images and edit inputs, by unguessable id',
    }), { placement: options.replicas > 1 });
    // The store's creation has just checked that JetStream answers: no second check.
    return new ImageFiles(store, await jetstreamManager(nc, { checkAPI: false }));
  }

  async put(data: Uint8Array, meta: ImageFileMeta, id = newImageFileId()): Promise<ImageFileRef> {
    await this.store.putBlob({
      name: id,
      metadata: {
        contentType: meta.contentType, jobId: meta.jobId, role: meta.role,
        // Each file signs its own URLs: nothing shared between the ingress replicas is needed to check them.
        token: randomBytes(24).toString('base64url'),
        ...(meta.apiKey && { apiKey: meta.apiKey }),
        ...(meta.width !== undefined && { width: String(meta.width) }),
        ...(meta.height !== undefined && { height: String(meta.height) }),
      },
    }, data);
    return { id, contentType: meta.contentType, bytes: data.byteLength, ...(meta.width !== undefined && { width: meta.width }), ...(meta.height !== undefined && { height: meta.height }) };
  }

  async info(id: string): Promise<ObjectInfo | undefined> {
    if (!isFileId(id)) return undefined;
    const info = await this.store.info(id);
    return info && !info.deleted ? info : undefined;
  }

  /**
   * A file's bytes, given its info (from `info`); undefined when it was deleted (expired) while read.
   * Throws a CorruptObjectError when the bytes do not match the info.
   */
  async read(info: ObjectInfo): Promise<Uint8Array | undefined> {
    try {
      return await readObject(this.#jsm, info);
    } catch (err) {
      if (err instanceof CorruptObjectError && (await this.info(info.name))?.nuid !== info.nuid) return undefined;
      throw err;
    }
  }

  async get(id: string): Promise<{ data: Uint8Array; info: ObjectInfo } | undefined> {
    const info = await this.info(id);
    const data = info && await this.read(info);
    return info && data ? { data, info } : undefined;
  }

  async delete(id: string): Promise<void> {
    if (isFileId(id)) await this.store.delete(id).catch(() => undefined);
  }
}

export function isFileId(id: string): boolean {
  return /^img_[A-Za-z0-9_-]{16,64}$/.test(id);
}

/** `expires` (epoch seconds) and `sig` for a file's URL: an `<img src>` works without a key until then. */
export function signFileUrl(id: string, token: string, expires: number): string {
  return createHmac('sha256', token).update(`${id}.${expires}`).digest('base64url');
}

export function verifyFileUrl(id: string, token: string, expires: number, sig: string, now = Date.now()): boolean {
  if (!Number.isInteger(expires) || expires * 1000 < now) return false;
  const expected = Buffer.from(signFileUrl(id, token, expires));
  const given = Buffer.from(sig);
  return expected.length === given.length && timingSafeEqual(expected, given);
}

/** The final answer of a completed job, with the images' bytes when given (b64 for `images.generate`). */
export function imageJobResult(record: ImageJobRecord, bytes?: ReadonlyMap<string, Uint8Array>): ImageJobResult {
  return {
    id: record.id,
    created: Math.floor(Date.parse(record.finishedAt ?? record.submittedAt) / 1000),
    model: record.model,
    backend: record.backend,
    data: (record.images ?? []).map((f) => {
      const b = bytes?.get(f.id);
      return {
        file_id: f.id, content_type: f.contentType, bytes: f.bytes,
        ...(f.width !== undefined && { width: f.width }), ...(f.height !== undefined && { height: f.height }),
        ...(b && { b64_json: Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64') }),
        ...(f.revisedPrompt && { revised_prompt: f.revisedPrompt }),
      };
    }),
    ...(record.usage && { usage: { input_tokens: record.usage.inputTokens, output_tokens: record.usage.outputTokens, total_tokens: record.usage.inputTokens + record.usage.outputTokens } }),
  };
}

/** Largest `images.generate` reply that carries the images themselves; larger answers name the files only. */
export const MAX_INLINE_RESULT_BYTES = 6 * 1024 * 1024;

/**
 * Sends a job's end to whoever waits for it: the result, or the error in the micro-service error
 * headers with OpenAI's error body. The requester (`images.generate`, or the ingress following the
 * job on its inbox) gets the images inline when it asked for `b64_json` and they fit one message, so
 * the ingress does not read back from the object store what the worker has just written there.
 * Never throws: nobody may be listening any more.
 */
export function sendImageJobEnd(nc: NatsConnection, record: ImageJobRecord, end: { error: GatewayError } | { bytes?: ReadonlyMap<string, Uint8Array> }): void {
  if (nc.isClosed()) return;
  const headers = createHeaders();
  headers.set(H.requestId, record.requestId);
  headers.set('Homelab-Job-Id', record.id);
  try {
    if ('error' in end) {
      errorHeaders(end.error, headers);
      const body = encodeJson(end.error.toOpenAI());
      for (const to of targets(record)) nc.publish(to, body, { headers });
      return;
    }
    const inline = record.responseFormat === 'b64_json' && end.bytes && [...end.bytes.values()].reduce((n, b) => n + b.byteLength, 0) * 4 / 3 < MAX_INLINE_RESULT_BYTES;
    const body = encodeJson(imageJobResult(record, inline ? end.bytes : undefined));
    for (const to of targets(record)) nc.publish(to, body, { headers });
  } catch {
    // The connection is closing: the record keeps the outcome, and `status` tells it.
  }
}

function targets(record: ImageJobRecord): string[] {
  return [...new Set([record.replyTo, record.progressTo].filter((t): t is string => Boolean(t)))];
}

/** A job's end as a GatewayError (for a failed or cancelled record). */
export function imageJobError(record: ImageJobRecord): GatewayError {
  if (record.state === 'cancelled') return new GatewayError('cancelled', `image job ${record.id} was cancelled`);
  const e = record.error;
  if (!e) return new GatewayError('internal_error', `image job ${record.id} failed`);
  const code = (e.code in codes ? e.code : 'internal_error') as ConstructorParameters<typeof GatewayError>[0];
  return new GatewayError(code, e.message, { status: e.status, ...(e.param && { param: e.param }) });
}

const codes: Record<string, unknown> = ErrorCodes;
