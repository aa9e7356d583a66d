import { GatewayError } from '@homelab/bus';
import { parseSseEvent } from '../framing.ts';
import { topLevelSpans } from '../json-bytes.ts';
import { RecordWatch } from '../record-watch.ts';
import type { AnswerFacts } from '../types.ts';
import { fromAnthropicStreamError } from './backend-answer.ts';

/*
 * An Anthropic answer passing through to an Anthropic client unchanged (bytes in = bytes out): the
 * watch finds the events and reads only what the gateway needs. Every event names its type on its
 * `event:` line, so the many deltas and pings are recognised without parsing; only the few events
 * that carry facts are parsed: message_start (model, input and cache tokens), message_delta (stop
 * reason, output tokens), error, and the block events until the first content.
 */

const LF = 0x0a;
const EVENT_PREFIX = Buffer.from('event:');

interface Usage {
  input_tokens?: number | null;
  output_tokens?: number | null;
  cache_read_input_tokens?: number | null;
  cache_creation_input_tokens?: number | null;
}

/** The facts of Anthropic's usage: inputTokens as the gateway counts them, cache reads and writes included. */
function usageFacts(usage: Usage, into: AnswerFacts, known: Usage): void {
  // message_delta's counts are cumulative totals, null where unchanged: keep what message_start said.
  for (const key of ['input_tokens', 'output_tokens', 'cache_read_input_tokens', 'cache_creation_input_tokens'] as const) {
    const value = usage[key];
    if (typeof value === 'number') known[key] = value;
  }
  const cacheRead = known.cache_read_input_tokens ?? 0;
  if (known.input_tokens != null) into.inputTokens = known.input_tokens + cacheRead + (known.cache_creation_input_tokens ?? 0);
  if (known.output_tokens != null) into.outputTokens = known.output_tokens;
  if (cacheRead > 0) into.cachedTokens = cacheRead;
}

/** The event name of a record, from its `event:` line (Anthropic writes it first), else from a full parse. */
function eventName(record: Buffer): string | undefined {
  if (record.compare(EVENT_PREFIX, 0, EVENT_PREFIX.length, 0, EVENT_PREFIX.length) === 0) {
    let end = record.indexOf(LF);
    if (end < 0) end = record.length;
    if (record[end - 1] === 0x0d) end--;
    return record.toString('latin1', EVENT_PREFIX.length, end).trim();
  }
  return parseSseEvent(record).event;
}

export class AnthropicStreamWatch extends RecordWatch {
  readonly #usage: Usage = {};
  facts: AnswerFacts = {};

  constructor() {
    super('sse');
  }

  protected read(record: Buffer): boolean {
    this.#readEvent(record);
    return true;
  }

  #readEvent(record: Buffer): void {
    switch (eventName(record)) {
      case 'content_block_delta':
      case 'content_block_start':
        if (!this.hasContent) this.#seeContent(record);
        return;
      case 'message_start': {
        const data = this.#data(record) as { message?: { model?: string; usage?: Usage } } | undefined;
        if (data?.message?.model) this.facts.responseModel = data.message.model;
        if (data?.message?.usage) usageFacts(data.message.usage, this.facts, this.#usage);
        return;
      }
      case 'message_delta': {
        const data = this.#data(record) as { delta?: { stop_reason?: string | null }; usage?: Usage } | undefined;
        if (data?.delta?.stop_reason) this.facts.finishReason = data.delta.stop_reason;
        if (data?.usage) usageFacts(data.usage, this.facts, this.#usage);
        return;
      }
      case 'message_stop':
        this.complete = true;
        return;
      case 'error': {
        const data = this.#data(record) as { error?: { type?: string; message?: string } } | undefined;
        this.error ??= fromAnthropicStreamError({ type: data?.error?.type ?? 'api_error', message: data?.error?.message ?? 'unknown error' });
        return;
      }
      default: // ping, content_block_stop, and event types added later
        return;
    }
  }

  /** Content commits the answer: text or thinking that is not empty, or any block but an empty text or thinking one (a tool call). */
  #seeContent(record: Buffer): void {
    const data = this.#data(record) as { delta?: { type?: string; text?: string; thinking?: string }; content_block?: { type?: string; text?: string; thinking?: string } } | undefined;
    const part = data?.delta ?? data?.content_block;
    if (!part) return;
    if (part.type === 'text_delta' || part.type === 'text') this.hasContent = !!part.text;
    else if (part.type === 'thinking_delta' || part.type === 'thinking') this.hasContent = !!part.thinking;
    else if (data?.content_block) this.hasContent = true;
  }

  #data(record: Buffer): unknown {
    const { data } = parseSseEvent(record);
    if (data === undefined) return undefined;
    try {
      return JSON.parse(data);
    } catch {
      this.error ??= new GatewayError('backend_error', 'anthropic sent a malformed stream event');
      return undefined;
    }
  }
}

/** The facts of a whole Message passing through: its top level only, never its content. */
export function readAnthropicAnswer(bytes: Uint8Array): AnswerFacts {
  const spans = topLevelSpans(bytes, ['model', 'stop_reason', 'usage']);
  const facts: AnswerFacts = {};
  if (!spans) return facts;
  const value = (key: string): unknown => {
    const span = spans.get(key);
    return span ? JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset + span.start, span.end - span.start).toString('utf8')) : undefined;
  };
  const model = value('model');
  if (typeof model === 'string') facts.responseModel = model;
  const stop = value('stop_reason');
  if (typeof stop === 'string') facts.finishReason = stop;
  const usage = value('usage');
  if (usage && typeof usage === 'object') usageFacts(usage as Usage, facts, {});
  return facts;
}
