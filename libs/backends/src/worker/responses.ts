import { randomBytes } from 'node:crypto';
import { GatewayError, openResponsesBucket, type NatsConnection, type ResponsesBucket } from '@homelab/bus';
import type { LabConfig } from '@homelab/config';
import {
  decodeStoredResponse, expandedInput, expandedRequest, fitStoredResponse, isResponseId, newStoredResponse, previousResponseNotFound, readTopLevel,
  setTopLevel, storedResponseFor, type StoredResponse,
} from '@homelab/dialects';
import type { Logger } from '@homelab/logging';

/*
 * The Responses API's state at the worker (docs/dialects.md, "Stored responses"). The worker is
 * where the backend that answers is known, so it is where a `previous_response_id` becomes the
 * conversation it names: passed on to OpenAI as it is when OpenAI wrote that response (OpenAI keeps
 * it too), expanded into the input everywhere else. And it is where the answer's Response is
 * complete, so it keeps it in the KV bucket `responses` before the answer's last bytes leave:
 * a client that continues the moment it has the answer finds the record on any replica.
 */

/** The bucket and what the worker needs to keep records in it. */
export interface ResponsesStore {
  bucket: ResponsesBucket;
  /** How long a record is kept (the bucket's TTL). */
  ttlMs: number;
  /** The largest record the bus carries (its max payload, less room for the message's headers). */
  maxRecordBytes: number;
  log: Logger;
}

/** Room left in a bus message for a KV record's headers. */
const HEADER_ROOM_BYTES = 64 * 1024;

/** Opens the bucket `responses` (made when missing) with the lab's TTL (`inference.responses.ttlDays`). */
export async function openResponsesStore(nc: NatsConnection, config: Pick<LabConfig, 'nats' | 'responses'>, log: Logger): Promise<ResponsesStore> {
  const ttlMs = config.responses.ttlDays * 86_400_000;
  const bucket = await openResponsesBucket(nc, { replicas: config.nats.replicas, ttlMs });
  const maxPayload = nc.info?.max_payload ?? 1024 * 1024;
  return { bucket, ttlMs, maxRecordBytes: maxPayload - HEADER_ROOM_BYTES, log };
}

type Input = string | Record<string, unknown>[] | undefined;

/** One Responses request at the worker: the conversation it continues, and the keeping of its answer. */
export class ResponsesTurn {
  /** The answer's Response id (translations; a backend that speaks Responses makes its own). */
  readonly responseId = `resp_${randomBytes(24).toString('hex')}`;
  readonly #bytes: Uint8Array;
  readonly #store: ResponsesStore;
  readonly #owner: string;
  readonly #provider: string;
  readonly #keep: boolean;
  readonly #previous: StoredResponse | undefined;
  readonly #input: Input;
  #kept = false;

  private constructor(bytes: Uint8Array, store: ResponsesStore, owner: string, provider: string, keep: boolean, previous: StoredResponse | undefined, input: Input) {
    this.#bytes = bytes;
    this.#store = store;
    this.#owner = owner;
    this.#provider = provider;
    this.#keep = keep;
    this.#previous = previous;
    this.#input = input;
  }

  /**
   * Reads what the request's bytes say of the store (top-level `store`, `previous_response_id`,
   * `input`; the rest stays unparsed) and the stored response it continues. A previous response
   * that is not there, expired, or another key's is OpenAI's 400 `previous_response_id`.
   */
  static async open(bytes: Uint8Array, store: ResponsesStore, owner: string, provider: string): Promise<ResponsesTurn> {
    const keep = readTopLevel(bytes, 'store') !== false;
    const previousId = readTopLevel(bytes, 'previous_response_id');
    const previous = typeof previousId === 'string' ? await readPrevious(store, previousId, owner) : undefined;
    const input = keep ? (readTopLevel(bytes, 'input') as Input) : undefined;
    return new ResponsesTurn(bytes, store, owner, provider, keep, previous, input);
  }

  /**
   * The bytes for a backend that speaks Responses (OpenAI): the client's own when there is nothing
   * to expand or OpenAI wrote the previous response; otherwise the conversation in `input`, and
   * without the other backend's reasoning items (OpenAI refuses reasoning ids it did not make).
   * Every other byte of the body stays as the client sent it.
   */
  passThroughBytes(): Uint8Array {
    const previous = this.#previous;
    if (!previous || (this.#provider === 'openai' && previous.provider === 'openai')) return this.#bytes;
    return setTopLevel(this.#bytes, { previous_response_id: undefined, input: expandedInput(previous, this.#input ?? (readTopLevel(this.#bytes, 'input') as Input), { dropReasoning: true }) });
  }

  /** The request a translation reads: the client's, with the conversation expanded. */
  translationBody<T extends Record<string, unknown>>(clientBody: T): T {
    return this.#previous ? (expandedRequest(clientBody, this.#previous) as unknown as T) : clientBody;
  }

  /** Whether the answer will be kept (the request did not say `store: false`). */
  get stores(): boolean {
    return this.#keep;
  }

  /**
   * Keeps the answer's Response (when the request did not say `store: false`). Called before the
   * answer's last bytes go out. A record that cannot be kept (too large even without its images,
   * a bucket that fails) is logged: the client has its answer, only a later continuation will miss it.
   */
  async keep(response: object | undefined): Promise<void> {
    if (!this.#keep || this.#kept || !response) return;
    this.#kept = true;
    const log = this.#store.log;
    const id = (response as { id?: unknown }).id;
    if (typeof id !== 'string' || !isResponseId(id)) {
      log.warn({ id: String(id).slice(0, 80) }, 'a Response without a usable id: not stored');
      return;
    }
    const now = Date.now();
    const record = newStoredResponse({
      response: response as StoredResponse['response'], input: this.#input, previous: this.#previous, owner: this.#owner, provider: this.#provider,
      now, ttlSeconds: this.#store.ttlMs / 1000,
    });
    const fitted = fitStoredResponse(record, this.#store.maxRecordBytes);
    if (!fitted) {
      log.warn({ responseId: id, maxBytes: this.#store.maxRecordBytes }, 'a Response too large to store even without its images: not stored');
      return;
    }
    if (fitted.omitted > 0) log.info({ responseId: id, omitted: fitted.omitted }, 'stored a Response without the bytes of its oldest images');
    try {
      // create, not put: a record is never replaced by another answer's.
      await this.#store.bucket.create(id, fitted.bytes);
    } catch (err) {
      log.warn({ responseId: id, err: (err as Error).message }, 'could not store a Response');
    }
  }
}

async function readPrevious(store: ResponsesStore, id: string, owner: string): Promise<StoredResponse> {
  if (!isResponseId(id)) throw previousResponseNotFound(id);
  let record: StoredResponse | undefined;
  try {
    const entry = await store.bucket.get(id);
    if (entry && entry.operation === 'PUT') record = decodeStoredResponse(entry.value);
  } catch (err) {
    if (err instanceof GatewayError) throw err;
    throw new GatewayError('backend_unavailable', 'the response store could not be read; retry shortly', { cause: err });
  }
  try {
    return storedResponseFor(record, id, owner, Date.now());
  } catch {
    throw previousResponseNotFound(id);
  }
}
