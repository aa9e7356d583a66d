import { GatewayError } from '@homelab/bus';
import { RecordSplitter, parseSseEvent } from '../framing.ts';
import { keyMarker, scanValueAfterKey, topLevelSpans } from '../json-bytes.ts';
import type { AnswerFacts, StreamWatch } from '../types.ts';
import type { ResponseObject } from './client-answer.ts';

/*
 * A Responses answer passing through from a backend that speaks the Responses API (OpenAI): the
 * stream's bytes reach the client unchanged; the watch reads the event names and parses only the
 * few events it needs (the terminal one with the usage, an error).
 */

const EVENT_PREFIX = Buffer.from('event:');
const TYPE = keyMarker('type');
const TERMINAL = new Set(['response.completed', 'response.incomplete', 'response.failed']);
/**
 * Events that come before any output reaches the client: the response's creation and the opening
 * of an item, before a first delta. Every other event (a text, reasoning or arguments delta, a
 * function call or built-in tool item, a terminal event) is content.
 */
const PREAMBLE = new Set([
  'response.created', 'response.queued', 'response.in_progress', 'response.content_part.added',
  'response.reasoning_summary_part.added', 'keepalive', 'error',
]);

/** What the gateway reads of a Response object (an answer, or a terminal event's `response`). */
export function responseFacts(response: Pick<ResponseObject, 'model' | 'status' | 'usage' | 'incomplete_details'> | Record<string, unknown>): AnswerFacts {
  const facts: AnswerFacts = {};
  const r = response as Partial<ResponseObject>;
  if (typeof r.model === 'string') facts.responseModel = r.model;
  const reason = r.incomplete_details?.reason;
  if (typeof reason === 'string') facts.finishReason = reason;
  else if (typeof r.status === 'string') facts.finishReason = r.status;
  const usage = r.usage;
  if (usage && typeof usage.input_tokens === 'number') {
    facts.inputTokens = usage.input_tokens;
    facts.outputTokens = usage.output_tokens;
    const cached = usage.input_tokens_details?.cached_tokens;
    if (cached) facts.cachedTokens = cached;
  }
  return facts;
}

/** The facts of a whole Response passing through, read from its top-level fields only. */
export function readResponsesAnswer(bytes: Uint8Array): AnswerFacts {
  const spans = topLevelSpans(bytes, ['model', 'status', 'usage', 'incomplete_details']);
  if (!spans) return {};
  const fields: Record<string, unknown> = {};
  for (const [key, span] of spans) fields[key] = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset + span.start, span.end - span.start).toString('utf8'));
  return responseFacts(fields);
}

/** The name of one SSE event: its `event:` line, or else the `type` its data starts with. */
export function responsesEventName(record: Buffer): string | undefined {
  if (record.subarray(0, EVENT_PREFIX.length).equals(EVENT_PREFIX)) {
    let end = record.indexOf(0x0a);
    if (end < 0) end = record.length;
    return record.toString('utf8', EVENT_PREFIX.length, end).trim();
  }
  const type = scanValueAfterKey(record, TYPE);
  return typeof type === 'string' ? type : undefined;
}

/**
 * Watches a Responses stream passing through. Until the first content it holds the events back
 * (response.created, response.in_progress, an item opening): a backend that fails before content
 * can then be replaced by another without the client having seen a first response id, which the
 * SDKs would refuse to see change. From the first content on, every event goes out as it comes.
 */
export class ResponsesStreamWatch implements StreamWatch {
  readonly #splitter = new RecordSplitter('sse');
  readonly #held: Buffer[] = [];
  hasContent = false;
  complete = false;
  facts: AnswerFacts = {};
  error: GatewayError | undefined;
  /** The Response of the terminal event (for the gateway's response store). */
  response: Record<string, unknown> | undefined;

  push(bytes: Uint8Array): Uint8Array | undefined {
    const cut = this.#splitter.push(bytes);
    if (!cut) return undefined;
    for (const [start, end] of cut.records) this.#read(cut.data.subarray(start, end));
    if (!this.hasContent && !this.error && !this.complete) {
      this.#held.push(Buffer.from(cut.data));
      return undefined;
    }
    if (this.#held.length === 0) return cut.data;
    const out = Buffer.concat([...this.#held, cut.data]);
    this.#held.length = 0;
    return out;
  }

  flush(): Uint8Array | undefined {
    const tail = this.#splitter.flush();
    if (tail) this.#read(tail);
    const parts = [...this.#held, ...(tail ? [tail] : [])];
    this.#held.length = 0;
    return parts.length > 0 ? Buffer.concat(parts) : undefined;
  }

  #read(record: Buffer): void {
    const name = responsesEventName(record);
    if (name === undefined) return;
    if (name === 'error') {
      this.#readError(record);
      return;
    }
    if (name === 'response.created') {
      const model = scanValueAfterKey(record, keyMarker('model'));
      if (typeof model === 'string') this.facts.responseModel ??= model;
    }
    if (TERMINAL.has(name)) {
      this.#readTerminal(name, record);
      return;
    }
    if (this.hasContent || PREAMBLE.has(name)) return;
    // A message or reasoning item opening, or a reasoning item closing that streamed no summary
    // (OpenAI's encrypted reasoning), shows the client nothing yet; any other item (a function
    // call, a built-in tool's call) is content.
    if (name === 'response.output_item.added' || name === 'response.output_item.done') {
      const type = itemType(record);
      if (type === 'message' || type === 'reasoning') return;
    }
    this.hasContent = true;
  }

  #readTerminal(name: string, record: Buffer): void {
    this.complete = true;
    const event = parseEvent(record);
    const response = event && isRecord(event['response']) ? event['response'] : undefined;
    if (!response) {
      this.error ??= new GatewayError('backend_error', `the backend sent a malformed ${name} event`);
      return;
    }
    this.response = response;
    Object.assign(this.facts, responseFacts(response));
    if (name === 'response.failed') {
      const error = isRecord(response['error']) ? response['error'] : {};
      this.error ??= new GatewayError('backend_error', `the backend failed mid-stream: ${String(error['message'] ?? error['code'] ?? 'response.failed').slice(0, 500)}`);
    } else {
      // A finished answer is content even when it is empty.
      this.hasContent = true;
    }
  }

  #readError(record: Buffer): void {
    const event = parseEvent(record);
    const detail = event && isRecord(event['error']) ? event['error'] : event;
    const message = detail?.['message'] ?? detail?.['code'] ?? 'error event';
    this.error ??= new GatewayError('backend_error', `the backend failed mid-stream: ${String(message).slice(0, 500)}`);
  }
}

function parseEvent(record: Buffer): Record<string, unknown> | undefined {
  const { data } = parseSseEvent(record);
  if (data === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(data);
    return isRecord(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

const ITEM = keyMarker('item');

/** The `type` of an output_item.added event's item, found without parsing the event. */
function itemType(record: Buffer): string | undefined {
  const at = record.indexOf(ITEM);
  if (at < 0) return undefined;
  const type = scanValueAfterKey(record, TYPE, at);
  return typeof type === 'string' ? type : undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
