import { randomBytes } from 'node:crypto';
import { GatewayError, openResponsesBucket, type NatsConnection, type ResponsesBucket } from '@homelab/bus';
import type { LabConfig } from '@homelab/config';
import {
  decodeStoredResponse, expandedInput, expandedRequest, findStoredItem, fitStoredResponse, isItemReference, isResponseId, itemIndexKey, itemNotFound,
  newStoredResponse, previousResponseNotFound, readTopLevel, setTopLevel, storedResponseFor, type StoredResponse,
} from '@homelab/dialects';
import type { Logger } from '@homelab/logging';

/*
 * The Responses API's state at the worker (docs/dialects.md, "Stored responses"). The worker is
 * where the backend that answers is known, so it is where the stored conversation a request names
 * is read: a `previous_response_id`, and `item_reference`s to earlier output items (the Vercel AI
 * SDK sends those by default). To OpenAI they pass as they are when OpenAI wrote what they name
 * (OpenAI keeps it too); everywhere else the items themselves take their place. And the worker is
 * where the answer's Response is complete, so it keeps it in the KV bucket `responses`, with an
 * index entry per output item, before the answer's last bytes leave: a client that continues the
 * moment it has the answer finds the record on any replica.
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

type Item = Record<string, unknown>;
type Input = string | Item[] | undefined;

/** An item reference of the request's input, and what it names. */
interface ResolvedReference {
  index: number;
  item: Item;
  /** The provider that answered the response holding the item. */
  provider: string;
}

const encoder = new TextEncoder();

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
  /** The request's own input, as sent. */
  readonly #input: Input;
  readonly #references: ResolvedReference[];
  #kept = false;

  private constructor(bytes: Uint8Array, store: ResponsesStore, context: TurnContext, state: { previous: StoredResponse | undefined; input: Input; references: ResolvedReference[] }) {
    this.#bytes = bytes;
    this.#store = store;
    this.#owner = context.owner;
    this.#provider = context.provider;
    this.#keep = readTopLevel(bytes, 'store') !== false;
    this.#previous = state.previous;
    this.#input = state.input;
    this.#references = state.references;
  }

  /**
   * Reads what the request's bytes say of the store (top-level `store`, `previous_response_id`,
   * `input`; the rest stays unparsed) and the stored items it names. A previous response or an item
   * that is not there, expired, or another key's is OpenAI's 400 on `previous_response_id` / `input[i]`.
   */
  static async open(bytes: Uint8Array, store: ResponsesStore, owner: string, provider: string): Promise<ResponsesTurn> {
    const reader = new RecordReader(store.bucket, owner);
    const previousId = readTopLevel(bytes, 'previous_response_id');
    const previous = typeof previousId === 'string' ? await reader.previous(previousId) : undefined;
    const input = readTopLevel(bytes, 'input') as Input;
    const references = Array.isArray(input) ? await reader.references(input) : [];
    return new ResponsesTurn(bytes, store, { owner, provider }, { previous, input, references });
  }

  /** Whether the answer will be kept (the request did not say `store: false`). */
  get stores(): boolean {
    return this.#keep;
  }

  /**
   * The bytes for a backend that speaks Responses (OpenAI): the client's own when OpenAI wrote
   * everything they name. Otherwise the conversation goes in `input`: the previous response's
   * expanded, item references replaced by their items; the other backends' reasoning items left
   * out (OpenAI refuses reasoning ids it did not make). Every other byte stays as the client sent it.
   */
  passThroughBytes(): Uint8Array {
    const previous = this.#previous;
    const expand = previous !== undefined && !(this.#provider === 'openai' && previous.provider === 'openai');
    const inline = this.#references.some((ref) => !(this.#provider === 'openai' && ref.provider === 'openai'));
    if (!expand && !inline) return this.#bytes;
    const own = inline ? this.#inlined((ref) => this.#provider === 'openai' && ref.provider === 'openai', true) : this.#input;
    if (!expand) return setTopLevel(this.#bytes, { input: own });
    return setTopLevel(this.#bytes, { previous_response_id: undefined, input: expandedInput(previous, own, { dropReasoning: true }) });
  }

  /** The request a translation reads: the client's, with the conversation expanded and item references replaced by their items. */
  translationBody<T extends Record<string, unknown>>(clientBody: T): T {
    const body = this.#references.length > 0 ? { ...clientBody, input: this.#inlined(() => false, false) } : clientBody;
    return this.#previous ? (expandedRequest(body, this.#previous) as unknown as T) : body;
  }

  /**
   * The request's input with its item references replaced by the items they name, except those
   * `keepReference` keeps; reasoning of another backend left out when `dropForeignReasoning`.
   */
  #inlined(keepReference: (ref: ResolvedReference) => boolean, dropForeignReasoning: boolean): Input {
    if (!Array.isArray(this.#input) || this.#references.length === 0) return this.#input;
    const byIndex = new Map(this.#references.map((ref) => [ref.index, ref]));
    return this.#input.flatMap((item, index) => {
      const ref = byIndex.get(index);
      if (!ref || keepReference(ref)) return [item];
      if (dropForeignReasoning && ref.item['type'] === 'reasoning' && ref.provider !== 'openai') return [];
      return [ref.item];
    });
  }

  /**
   * Keeps the answer's Response (when the request did not say `store: false`), and an index entry
   * per output item for later item references. Called before the answer's last bytes go out. A
   * record that cannot be kept (too large even without its images, a bucket that fails) is logged:
   * the client has its answer, only a later continuation will miss it.
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
      // The stored input holds the items themselves: a later expansion needs no reference resolved again.
      response: response as StoredResponse['response'], input: this.#inlined(() => false, false), previous: this.#previous, owner: this.#owner,
      provider: this.#provider, now, ttlSeconds: this.#store.ttlMs / 1000,
    });
    const fitted = fitStoredResponse(record, this.#store.maxRecordBytes);
    if (!fitted) {
      log.warn({ responseId: id, maxBytes: this.#store.maxRecordBytes }, 'a Response too large to store even without its images: not stored');
      return;
    }
    if (fitted.omitted > 0) log.info({ responseId: id, omitted: fitted.omitted }, 'stored a Response without the bytes of its oldest images');
    // create, not put: a record (or an item's entry) is never replaced by another answer's.
    const writes = [this.#store.bucket.create(id, fitted.bytes), ...indexKeys(record).map((key) => this.#store.bucket.create(key, encoder.encode(id)))];
    const failed = (await Promise.allSettled(writes)).find((result) => result.status === 'rejected');
    if (failed) log.warn({ responseId: id, err: (failed.reason as Error).message }, 'could not store a Response');
  }
}

interface TurnContext {
  owner: string;
  provider: string;
}

/** The index keys of a record's output items. */
function indexKeys(record: StoredResponse): string[] {
  return (record.response.output as Item[]).flatMap((item) => {
    const key = typeof item['id'] === 'string' ? itemIndexKey(item['id']) : undefined;
    return key ? [key] : [];
  });
}

/** Reads the records a request names, each once, as its owner may see them. */
class RecordReader {
  readonly #bucket: ResponsesBucket;
  readonly #owner: string;
  readonly #records = new Map<string, StoredResponse | undefined>();

  constructor(bucket: ResponsesBucket, owner: string) {
    this.#bucket = bucket;
    this.#owner = owner;
  }

  async previous(id: string): Promise<StoredResponse> {
    const record = isResponseId(id) ? await this.#record(id) : undefined;
    if (!record) throw previousResponseNotFound(id);
    return record;
  }

  async references(input: Item[]): Promise<ResolvedReference[]> {
    const found: ResolvedReference[] = [];
    for (const [index, item] of input.entries()) {
      if (!isItemReference(item)) continue;
      const key = itemIndexKey(item.id);
      const responseId = key ? await this.#read(key).then((bytes) => bytes && Buffer.from(bytes).toString('utf8')) : undefined;
      const record = responseId && isResponseId(responseId) ? await this.#record(responseId) : undefined;
      const stored = record && findStoredItem(record, item.id);
      if (!record || !stored) throw itemNotFound(item.id, `input[${index}]`);
      found.push({ index, item: stored, provider: record.provider });
    }
    return found;
  }

  /** A record as this owner may see it; undefined when missing, expired or another key's. */
  async #record(id: string): Promise<StoredResponse | undefined> {
    if (this.#records.has(id)) return this.#records.get(id);
    const bytes = await this.#read(id);
    let record: StoredResponse | undefined;
    try {
      record = bytes ? storedResponseFor(decodeStoredResponse(bytes), id, this.#owner, Date.now()) : undefined;
    } catch (err) {
      if (!(err instanceof GatewayError) || err.code !== 'not_found') throw err;
    }
    this.#records.set(id, record);
    return record;
  }

  async #read(key: string): Promise<Uint8Array | undefined> {
    try {
      const entry = await this.#bucket.get(key);
      return entry && entry.operation === 'PUT' ? entry.value : undefined;
    } catch (err) {
      throw new GatewayError('backend_unavailable', 'the response store could not be read; retry shortly', { cause: err });
    }
  }
}
