import { createHash } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import { GatewayError, validator } from '@homelab/bus';

/*
 * The gateway's store of Responses (`store`, on by default as at OpenAI), as pure functions: the
 * record kept per response, the conversation a `previous_response_id` continues, and the answers
 * of `GET /v1/responses/{id}`, `GET /v1/responses/{id}/input_items` and `DELETE /v1/responses/{id}`.
 * Where the records live (a JetStream KV bucket, keyed by response id, with the bucket's TTL) is the
 * caller's business.
 *
 * Continuing a conversation, as OpenAI does: the new request's input follows the previous
 * response's whole input and its output; the previous `instructions` are not carried over. The
 * gateway puts the expanded input in the body, drops `previous_response_id` from it, and gives the
 * translation the client's original body (the `body` of `answerFromInternal`), so the answer still
 * names the previous response.
 */

const Open = { additionalProperties: true } as const;

/** One stored item: an input item with an id, or an output item of an earlier response. */
export type StoredItem = Record<string, unknown> & { id: string; type: string };

export const StoredResponseSchema = Type.Object({
  /** The Response object as the client got it (and as `GET /v1/responses/{id}` returns it). */
  response: Type.Object({ id: Type.String({ minLength: 1 }), object: Type.Literal('response'), output: Type.Array(Type.Object({}, Open)) }, Open),
  /** Every input item the response answered: the earlier turns first, each with an id. */
  input: Type.Array(Type.Object({ id: Type.String({ minLength: 1 }), type: Type.String({ minLength: 1 }) }, Open)),
  /** The name of the API key that created it: no other key can read, continue or delete it. */
  owner: Type.String(),
  /** The backend's provider (`openai`, `vllm`, …): OpenAI's reasoning items are valid input at OpenAI only. */
  provider: Type.String(),
  /** Milliseconds since the epoch. */
  createdAt: Type.Integer(),
  expiresAt: Type.Integer(),
}, Open);
export type StoredResponse = Static<typeof StoredResponseSchema> & { response: Record<string, unknown> & { output: Record<string, unknown>[] }; input: StoredItem[] };

const checkStoredResponse = validator(StoredResponseSchema);

/** A stored record from its bytes (as the KV bucket holds them); throws when they are not one. */
export function decodeStoredResponse(bytes: Uint8Array): StoredResponse {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch (err) {
    throw new GatewayError('internal_error', 'a stored response is not valid JSON', { cause: err });
  }
  return checkStoredResponse.parse(value) as StoredResponse;
}

export function encodeStoredResponse(record: StoredResponse): Uint8Array {
  return Buffer.from(JSON.stringify(record));
}

/** Whether a request asks for its response to be stored (OpenAI's default: yes). */
export function shouldStore(request: { store?: boolean | null | undefined }): boolean {
  return request.store !== false;
}

const RESPONSE_ID = /^resp_[A-Za-z0-9_-]{1,200}$/;

/** A response id fit to be a key (a KV key takes letters, digits and `-_=./`); anything else is not found. */
export function isResponseId(id: string): boolean {
  return RESPONSE_ID.test(id);
}

/** OpenAI's 404 for a response that is not there, expired, or another key's. */
export function responseNotFound(id: string): GatewayError {
  return new GatewayError('not_found', `Response with id '${id}' not found.`);
}

/** OpenAI's 400 for a `previous_response_id` the store does not have (or that belongs to another key). */
export function previousResponseNotFound(id: string): GatewayError {
  return new GatewayError('invalid_request', `Previous response with id '${id}' not found.`, { param: 'previous_response_id' });
}

export interface NewRecord {
  /** The Response the client got. */
  response: StoredResponse['response'];
  /** The request's own input (a string or items), after the previous conversation if there was one. */
  input: string | Record<string, unknown>[] | undefined;
  /** The stored conversation this request continued, if any. */
  previous?: StoredResponse | undefined;
  owner: string;
  provider: string;
  now: number;
  ttlSeconds: number;
}

/** The record to store for an answered request. */
export function newStoredResponse(options: NewRecord): StoredResponse {
  const earlier = options.previous ? conversationOf(options.previous) : [];
  const own = normalizeInput(options.input, options.response.id, earlier.length);
  return {
    response: options.response,
    input: [...earlier, ...own],
    owner: options.owner,
    provider: options.provider,
    createdAt: options.now,
    expiresAt: options.now + options.ttlSeconds * 1000,
  };
}

/**
 * The stored record `id` as `owner` may see it: another key's record, or one past its time (the
 * bucket's TTL removes it soon after), is not found.
 */
export function storedResponseFor(record: StoredResponse | undefined, id: string, owner: string, now: number): StoredResponse {
  if (!record || record.owner !== owner || record.expiresAt <= now || record.response.id !== id) throw responseNotFound(id);
  return record;
}

export interface ExpandOptions {
  /** Leave out earlier reasoning items: a backend other than the one that wrote them cannot read them (OpenAI refuses unknown rs_ ids). */
  dropReasoning?: boolean;
}

/**
 * The input items of a request that continues `previous`: everything `previous` answered, its
 * output, then the request's own input.
 */
export function expandedInput(previous: StoredResponse, input: string | Record<string, unknown>[] | undefined, options: ExpandOptions = {}): Record<string, unknown>[] {
  const own = typeof input === 'string' ? [{ role: 'user', content: input }] : (input ?? []);
  const earlier = conversationOf(previous).filter((item) => !(options.dropReasoning && item.type === 'reasoning'));
  return [...earlier, ...own];
}

/**
 * The request body that continues `previous`, for a backend: the expanded input, without
 * `previous_response_id`; every other field as the client sent it.
 */
export function expandedRequest<T extends Record<string, unknown>>(body: T, previous: StoredResponse, options: ExpandOptions = {}): Omit<T, 'previous_response_id'> & { input: Record<string, unknown>[] } {
  const { previous_response_id: _previous, ...rest } = body;
  return { ...rest, input: expandedInput(previous, body['input'] as string | Record<string, unknown>[] | undefined, options) };
}

/** The earlier conversation as input items: what `previous` answered, then its output. */
function conversationOf(previous: StoredResponse): StoredItem[] {
  return [...previous.input, ...(previous.response.output as StoredItem[])];
}

/**
 * Input items as OpenAI lists them: each with an id (kept when the client gave one), messages with
 * their content as a list of parts, status `completed`.
 */
export function normalizeInput(input: string | Record<string, unknown>[] | undefined, responseId: string, offset = 0): StoredItem[] {
  const items = typeof input === 'string' ? [{ role: 'user', content: input }] : (input ?? []);
  return items.map((item, index) => {
    const type = typeof item['type'] === 'string' ? item['type'] : 'role' in item ? 'message' : 'item_reference';
    const id = typeof item['id'] === 'string' && item['id'] ? item['id'] : itemId(type, responseId, offset + index);
    if (type !== 'message') return { ...item, id, type, ...(needsStatus(type) && item['status'] == null && { status: 'completed' }) };
    const role = String(item['role']);
    const content = typeof item['content'] === 'string'
      ? [role === 'assistant' ? { type: 'output_text', text: item['content'], annotations: [] } : { type: 'input_text', text: item['content'] }]
      : item['content'];
    return { id, type, status: item['status'] ?? 'completed', role, content };
  });
}

function needsStatus(type: string): boolean {
  return type === 'function_call' || type === 'function_call_output';
}

function itemId(type: string, responseId: string, index: number): string {
  const prefix = type === 'message' ? 'msg' : type === 'function_call' ? 'fc' : type === 'function_call_output' ? 'fco' : type === 'reasoning' ? 'rs' : 'item';
  return `${prefix}_${createHash('sha256').update(`${responseId}\0input\0${index}`).digest('hex').slice(0, 48)}`;
}

export interface InputItemsQuery {
  limit: number;
  order: 'asc' | 'desc';
  after?: string;
  before?: string;
}

/** The query of `GET /v1/responses/{id}/input_items` (`limit` 1–100, default 20; `order` default desc). */
export function parseInputItemsQuery(query: Record<string, string | undefined>): InputItemsQuery {
  const parsed: InputItemsQuery = { limit: 20, order: 'desc' };
  if (query['limit'] !== undefined) {
    const limit = Number(query['limit']);
    if (!Number.isInteger(limit) || limit < 1 || limit > 100) {
      throw new GatewayError('invalid_request', `Invalid 'limit': expected an integer from 1 to 100, got '${query['limit']}'.`, { param: 'limit' });
    }
    parsed.limit = limit;
  }
  if (query['order'] !== undefined) {
    if (query['order'] !== 'asc' && query['order'] !== 'desc') {
      throw new GatewayError('invalid_request', `Invalid 'order': expected 'asc' or 'desc', got '${query['order']}'.`, { param: 'order' });
    }
    parsed.order = query['order'];
  }
  if (query['after']) parsed.after = query['after'];
  if (query['before']) parsed.before = query['before'];
  return parsed;
}

export interface ListPage<T> {
  object: 'list';
  data: T[];
  first_id: string | null;
  last_id: string | null;
  has_more: boolean;
}

/** A page of a stored response's input items, in the query's order, after (or before) a cursor item. */
export function inputItemsPage(record: StoredResponse, query: InputItemsQuery): ListPage<StoredItem> {
  const ordered = query.order === 'asc' ? record.input : [...record.input].reverse();
  let from = 0;
  let to = ordered.length;
  if (query.after !== undefined) from = cursor(ordered, query.after, 'after') + 1;
  if (query.before !== undefined) to = cursor(ordered, query.before, 'before');
  const window = ordered.slice(from, Math.max(from, to));
  const data = window.slice(0, query.limit);
  return { object: 'list', data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: window.length > data.length };
}

function cursor(items: StoredItem[], id: string, param: 'after' | 'before'): number {
  const at = items.findIndex((item) => item.id === id);
  if (at < 0) throw new GatewayError('invalid_request', `Invalid '${param}': no input item '${id}' in this response.`, { param });
  return at;
}

/** The answer of `DELETE /v1/responses/{id}`. */
export function deletedResponse(id: string): { id: string; object: 'response.deleted'; deleted: true } {
  return { id, object: 'response.deleted', deleted: true };
}

/** What stands in for an image or file whose bytes were left out of a stored conversation. */
export const OMITTED_PART_TEXT = '[an image or file of this message was left out of the stored conversation, which the gateway keeps below the message bus\'s size limit; send it again if the model needs it]';

export interface FittedRecord {
  record: StoredResponse;
  bytes: Uint8Array;
  /** How many images or files had their bytes left out. */
  omitted: number;
}

/**
 * The record as it can be stored in at most `maxBytes` (a KV value is one NATS message, 8 MB in
 * the lab's nats.conf). A record over it loses the inline bytes of its input images and files
 * (`data:` URLs, `file_data`), oldest first, each replaced by a text part saying so, until it fits:
 * a conversation keeps its words and its latest images. Undefined when even that does not fit.
 */
export function fitStoredResponse(record: StoredResponse, maxBytes: number): FittedRecord | undefined {
  let bytes = encodeStoredResponse(record);
  if (bytes.byteLength <= maxBytes) return { record, bytes, omitted: 0 };
  const placeholder = { type: 'input_text', text: OMITTED_PART_TEXT };
  const placeholderBytes = Buffer.byteLength(JSON.stringify(placeholder));
  let size = bytes.byteLength;
  let omitted = 0;
  const input: StoredItem[] = record.input.map((item) => ({ ...item }));
  for (const item of input) {
    for (const field of ['content', 'output'] as const) {
      const parts = item[field];
      if (!Array.isArray(parts)) continue;
      item[field] = parts.map((part: unknown) => {
        if (size <= maxBytes || !hasInlineBytes(part)) return part;
        // JSON.stringify of the record holds each part's own JSON verbatim: the size changes by exactly this.
        size += placeholderBytes - Buffer.byteLength(JSON.stringify(part));
        omitted++;
        return placeholder;
      });
    }
    if (size <= maxBytes) break;
  }
  if (size > maxBytes) return undefined;
  const fitted = { ...record, input };
  bytes = encodeStoredResponse(fitted);
  return bytes.byteLength <= maxBytes ? { record: fitted, bytes, omitted } : undefined;
}

/** An input image by data URL, or a file by its bytes. */
function hasInlineBytes(part: unknown): boolean {
  if (typeof part !== 'object' || part === null) return false;
  const p = part as Record<string, unknown>;
  if (p['type'] === 'input_image') return typeof p['image_url'] === 'string' && p['image_url'].startsWith('data:');
  return p['type'] === 'input_file' && typeof p['file_data'] === 'string' && p['file_data'].length > 0;
}

// --- item references: earlier output items named by id (the Vercel AI SDK sends them with `store`) ---

/** The KV key under which an output item's id points to the response that holds it; undefined for an id unfit to be a key. */
export function itemIndexKey(itemId: string): string | undefined {
  return /^[A-Za-z0-9_-]{1,200}$/.test(itemId) ? `item.${itemId}` : undefined;
}

/** An `item_reference` input item (`{type: "item_reference", id}`, or `{id}` alone). */
export function isItemReference(item: Record<string, unknown>): item is { id: string; type?: 'item_reference' } {
  if (typeof item['id'] !== 'string') return false;
  return item['type'] === 'item_reference' || (item['type'] == null && !('role' in item));
}

/** The item `id` in a stored response: one of its output items, else one of its input items. */
export function findStoredItem(record: StoredResponse, id: string): StoredItem | undefined {
  return (record.response.output as StoredItem[]).find((item) => item.id === id) ?? record.input.find((item) => item.id === id);
}

/** OpenAI's 400 for an item reference the store does not have (or that belongs to another key). */
export function itemNotFound(id: string, param: string): GatewayError {
  return new GatewayError('invalid_request', `Item with id '${id}' not found.`, { param });
}
