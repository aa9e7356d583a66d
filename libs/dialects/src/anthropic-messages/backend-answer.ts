import type { Message, RawMessageStreamEvent, StopReason } from '@anthropic-ai/sdk/resources/messages';
import type OpenAI from 'openai';
import { GatewayError, toGatewayError } from '@homelab/bus';
import { RecordSplitter, decodeUntilFailure, parseSseEvent } from '../framing.ts';
import type { ChatChunk, ChatCompletion, ChatUsage, ChunkDeltaWithReasoning, StreamDecoder, TranslationContext } from '../types.ts';

/*
 * Anthropic Messages answer → internal (OpenAI chat) answer: for a client of another dialect whose
 * request went to Anthropic. A whole Message becomes a chat.completion; a stream of Anthropic's SSE
 * events becomes chat.completion.chunks.
 */

/** The events of an Anthropic stream: the SDK's typed ones plus `ping` and `error`, which it handles itself. */
export type AnthropicStreamEvent =
  | RawMessageStreamEvent
  | { type: 'ping' }
  | { type: 'error'; error: { type: string; message: string } };

type ChatCompletionMessageWithReasoning = OpenAI.Chat.Completions.ChatCompletionMessage & { reasoning_content?: string };
type FinishReason = ChatCompletion['choices'][number]['finish_reason'];


export function fromAnthropicStopReason(reason: StopReason | null): FinishReason {
  switch (reason) {
    case 'max_tokens':
    case 'model_context_window_exceeded':
      return 'length';
    case 'tool_use':
      return 'tool_calls';
    case 'refusal':
      return 'content_filter';
    default: // end_turn, stop_sequence, pause_turn
      return 'stop';
  }
}

interface AnthropicUsage {
  input_tokens: number | null;
  output_tokens: number;
  cache_read_input_tokens: number | null;
  cache_creation_input_tokens: number | null;
  output_tokens_details?: { thinking_tokens: number } | null;
}

/** Anthropic counts cache reads and writes apart from `input_tokens`; OpenAI's prompt_tokens includes them. */
export function fromAnthropicUsage(usage: AnthropicUsage): ChatUsage {
  const cacheRead = usage.cache_read_input_tokens ?? 0;
  const cacheWrite = usage.cache_creation_input_tokens ?? 0;
  const prompt = (usage.input_tokens ?? 0) + cacheRead + cacheWrite;
  const out: ChatUsage = {
    prompt_tokens: prompt,
    completion_tokens: usage.output_tokens,
    total_tokens: prompt + usage.output_tokens,
    prompt_tokens_details: { cached_tokens: cacheRead, cache_write_tokens: cacheWrite },
  };
  const thinking = usage.output_tokens_details?.thinking_tokens;
  if (thinking !== undefined) out.completion_tokens_details = { reasoning_tokens: thinking };
  return out;
}

/** Translates a non-streaming Anthropic Message into an OpenAI `chat.completion`. */
export function fromAnthropicMessage(message: Message, created = Math.floor(Date.now() / 1000)): ChatCompletion {
  let text: string | null = null;
  let reasoning: string | undefined;
  const toolCalls: OpenAI.Chat.Completions.ChatCompletionMessageFunctionToolCall[] = [];
  for (const block of message.content) {
    if (block.type === 'text') text = (text ?? '') + block.text;
    else if (block.type === 'thinking') reasoning = (reasoning ?? '') + block.thinking;
    else if (block.type === 'tool_use') {
      toolCalls.push({ id: block.id, type: 'function', function: { name: block.name, arguments: JSON.stringify(block.input ?? {}) } });
    }
  }
  const out: ChatCompletionMessageWithReasoning = { role: 'assistant', content: text, refusal: null };
  if (toolCalls.length > 0) out.tool_calls = toolCalls;
  if (reasoning !== undefined) out.reasoning_content = reasoning;
  return {
    id: message.id,
    object: 'chat.completion',
    created,
    model: message.model,
    choices: [{ index: 0, message: out, finish_reason: fromAnthropicStopReason(message.stop_reason), logprobs: null }],
    usage: fromAnthropicUsage(message.usage),
  };
}

/** The GatewayError for an `error` event in the middle of a stream. */
export function fromAnthropicStreamError(error: { type: string; message: string }): GatewayError {
  const message = `anthropic: ${error.message}`;
  if (error.type === 'overloaded_error') return new GatewayError('backend_unavailable', message);
  if (error.type === 'rate_limit_error') return new GatewayError('rate_limited', message);
  return new GatewayError('backend_error', message);
}

/**
 * Turns Anthropic stream events into OpenAI `chat.completion.chunk`s, one event at a time.
 * Each event yields at most one chunk; `done` tells whether `message_stop` arrived.
 */
export class AnthropicChatStream {
  #id = '';
  #model = '';
  readonly #created: number;
  /** OpenAI tool call index per Anthropic content block index (tool calls count from 0). */
  readonly #toolIndexByBlock: number[] = [];
  #toolCount = 0;
  #usage: AnthropicUsage = { input_tokens: 0, output_tokens: 0, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 };
  #done = false;

  constructor(created = Math.floor(Date.now() / 1000)) {
    this.#created = created;
  }

  get done(): boolean {
    return this.#done;
  }

  /** The chunk to emit for this event, if any. Throws GatewayError on an `error` event. */
  push(event: AnthropicStreamEvent): ChatChunk | undefined {
    switch (event.type) {
      case 'message_start':
        this.#id = event.message.id;
        this.#model = event.message.model;
        this.#usage = event.message.usage;
        return this.#chunk({ role: 'assistant', content: '' });
      case 'content_block_start': {
        const block = event.content_block;
        if (block.type === 'tool_use') {
          const index = this.#toolCount++;
          this.#toolIndexByBlock[event.index] = index;
          return this.#chunk({ tool_calls: [{ index, id: block.id, type: 'function', function: { name: block.name, arguments: '' } }] });
        }
        if (block.type === 'text' && block.text) return this.#chunk({ content: block.text });
        if (block.type === 'thinking' && block.thinking) return this.#chunk({ reasoning_content: block.thinking });
        return undefined;
      }
      case 'content_block_delta': {
        const delta = event.delta;
        if (delta.type === 'text_delta') return this.#chunk({ content: delta.text });
        if (delta.type === 'thinking_delta') return this.#chunk({ reasoning_content: delta.thinking });
        if (delta.type === 'input_json_delta') {
          const index = this.#toolIndexByBlock[event.index];
          if (index === undefined || delta.partial_json === '') return undefined;
          return this.#chunk({ tool_calls: [{ index, function: { arguments: delta.partial_json } }] });
        }
        return undefined; // signature_delta, citations_delta: nothing OpenAI can carry
      }
      case 'message_delta': {
        // message_delta usage is cumulative; input fields may be null when unchanged.
        const u = event.usage;
        this.#usage = {
          input_tokens: u.input_tokens ?? this.#usage.input_tokens,
          output_tokens: u.output_tokens,
          cache_read_input_tokens: u.cache_read_input_tokens ?? this.#usage.cache_read_input_tokens,
          cache_creation_input_tokens: u.cache_creation_input_tokens ?? this.#usage.cache_creation_input_tokens,
          output_tokens_details: u.output_tokens_details ?? this.#usage.output_tokens_details ?? null,
        };
        return this.#chunk({}, fromAnthropicStopReason(event.delta.stop_reason));
      }
      case 'message_stop':
        this.#done = true;
        return { id: this.#id, object: 'chat.completion.chunk', created: this.#created, model: this.#model, choices: [], usage: fromAnthropicUsage(this.#usage) };
      case 'error':
        throw fromAnthropicStreamError(event.error);
      default: // content_block_stop, ping, and event types added later
        return undefined;
    }
  }

  #chunk(delta: ChunkDeltaWithReasoning, finishReason: FinishReason | null = null): ChatChunk {
    return {
      id: this.#id,
      object: 'chat.completion.chunk',
      created: this.#created,
      model: this.#model,
      choices: [{ index: 0, delta, finish_reason: finishReason, logprobs: null }],
    };
  }
}

/**
 * Reads an Anthropic backend's SSE bytes as internal chunks (the StreamDecoder of the dialect):
 * the framing splits the events, AnthropicChatStream translates them one at a time.
 */
export class AnthropicStreamDecoder implements StreamDecoder<ChatChunk> {
  readonly #splitter = new RecordSplitter('sse');
  readonly #stream: AnthropicChatStream;
  error: GatewayError | undefined;

  constructor(context: Pick<TranslationContext, 'created'>) {
    this.#stream = new AnthropicChatStream(context.created);
  }

  get complete(): boolean {
    return this.#stream.done;
  }

  push(bytes: Uint8Array): ChatChunk[] {
    const cut = this.error ? undefined : this.#splitter.push(bytes);
    if (!cut) return [];
    const records = cut.records.map(([start, end]) => cut.data.subarray(start, end));
    return decodeUntilFailure(records, (record) => this.#decode(record), (error) => { this.error = toGatewayError(error, 'backend_error'); });
  }

  #decode(record: Buffer): ChatChunk | undefined {
    const { data } = parseSseEvent(record);
    // A comment-only record (a proxy's keepalive) carries no data.
    if (data === undefined || data === '') return undefined;
    let event: AnthropicStreamEvent;
    try {
      event = JSON.parse(data) as AnthropicStreamEvent;
    } catch {
      throw new GatewayError('backend_error', 'anthropic sent a malformed stream event');
    }
    return this.#stream.push(event) ?? undefined;
  }
}

/** A whole Anthropic Message from a backend as the internal chat.completion. */
export function anthropicAnswerToInternal(body: unknown, context: Pick<TranslationContext, 'created'>): ChatCompletion {
  const message = body as Partial<Message> | null;
  if (message === null || typeof message !== 'object' || message.type !== 'message' || !Array.isArray(message.content) || !message.usage) {
    throw new GatewayError('backend_error', 'anthropic answered something that is not a Message');
  }
  return fromAnthropicMessage(message as Message, context.created);
}
