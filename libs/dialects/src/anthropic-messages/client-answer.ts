import type { StopReason } from '@anthropic-ai/sdk/resources/messages';
import type OpenAI from 'openai';
import { GatewayError } from '@homelab/bus';
import { sseEvent } from '../framing.ts';
import type { ChatChunk, ChatCompletion, ChatUsage, ChunkDeltaWithReasoning, InternalAnswers, InternalForm, StreamEncoder, TranslationContext } from '../types.ts';
import { anthropicStreamError } from './errors.ts';

/*
 * Internal (OpenAI chat) answer → Anthropic Message: for an Anthropic client whose model is served
 * by vLLM, Ollama or OpenAI. The whole answer becomes a Message; a stream becomes Anthropic's exact
 * event sequence, which the Anthropic SDK's MessageStream accumulates into the same Message.
 */

/** Anthropic's usage object, with the cache fields it always sends. */
export interface AnthropicUsage {
  input_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
  output_tokens: number;
}

type AnthropicBlock =
  | { type: 'thinking'; thinking: string; signature: string }
  | { type: 'text'; text: string }
  | { type: 'tool_use'; id: string; name: string; input: unknown };

/** The Message as Anthropic sends it. */
export interface AnthropicMessage {
  id: string;
  type: 'message';
  role: 'assistant';
  model: string;
  content: AnthropicBlock[];
  stop_reason: StopReason;
  stop_sequence: null;
  usage: AnthropicUsage;
}

type FinishReason = ChatCompletion['choices'][number]['finish_reason'];
type MessageWithReasoning = OpenAI.Chat.Completions.ChatCompletionMessage & { reasoning_content?: string | null; reasoning?: string | null };
/** vLLM 0.10+ names the reasoning delta `reasoning`; DeepSeek and older vLLM `reasoning_content`. */
type DeltaWithReasoning = ChunkDeltaWithReasoning & { reasoning?: string | null };
type ToolCallDelta = OpenAI.Chat.Completions.ChatCompletionChunk.Choice.Delta.ToolCall;

/**
 * Anthropic's own keepalive: a `ping` event, which every Anthropic client must accept anywhere in a
 * stream (the API sends them itself). An SSE comment would do for the SDK too, but hand-written
 * parsers of Anthropic's stream (editors' plugins, scripts) expect `event:`/`data:` pairs only.
 */
export const ANTHROPIC_PING = sseEvent('{"type": "ping"}', 'ping');

/**
 * A Message id from the gateway's request id: `msg_` and its letters and digits, so one id names
 * the answer in the client's log and the request in the gateway's trace.
 */
export function anthropicMessageId(requestId: string): string {
  const tail = requestId.replace(/[^A-Za-z0-9]/g, '');
  return `msg_${tail || Date.now().toString(36)}`;
}

/**
 * OpenAI's finish reason in Anthropic's words. A backend that called tools but says `stop` (some
 * OpenAI-compatible servers do) still means `tool_use`: clients run tools on that stop reason.
 */
export function toAnthropicStopReason(finish: FinishReason | null | undefined, calledTools: boolean): StopReason {
  if (calledTools || finish === 'tool_calls' || finish === 'function_call') return 'tool_use';
  if (finish === 'length') return 'max_tokens';
  if (finish === 'content_filter') return 'refusal';
  return 'end_turn';
}

/** OpenAI's prompt_tokens count cache reads and writes; Anthropic's input_tokens counts neither. */
export function toAnthropicUsage(usage: ChatUsage | null | undefined): AnthropicUsage {
  const details = usage?.prompt_tokens_details as { cached_tokens?: number; cache_write_tokens?: number } | null | undefined;
  const cacheRead = details?.cached_tokens ?? 0;
  const cacheWrite = details?.cache_write_tokens ?? 0;
  return {
    input_tokens: Math.max(0, (usage?.prompt_tokens ?? 0) - cacheRead - cacheWrite),
    cache_creation_input_tokens: cacheWrite,
    cache_read_input_tokens: cacheRead,
    output_tokens: usage?.completion_tokens ?? 0,
  };
}

/** A whole chat completion as an Anthropic Message: thinking, then text, then tool calls. */
export function anthropicMessageFromChat(completion: ChatCompletion, context: Pick<TranslationContext, 'requestId' | 'requestedModel'>): AnthropicMessage {
  const choice = completion.choices[0];
  const message = choice?.message as MessageWithReasoning | undefined;
  const content: AnthropicBlock[] = [];
  const reasoning = message?.reasoning_content ?? message?.reasoning;
  if (reasoning) content.push({ type: 'thinking', thinking: reasoning, signature: '' });
  if (message?.content) content.push({ type: 'text', text: message.content });
  // OpenAI's refusal is a text Anthropic would have given with stop_reason `refusal`.
  if (message?.refusal) content.push({ type: 'text', text: message.refusal });
  const calls = (message?.tool_calls ?? []).filter((call) => call.type === 'function');
  for (const [i, call] of calls.entries()) {
    content.push({ type: 'tool_use', id: call.id || `toolu_${i}`, name: call.function.name, input: toolInput(call.function.arguments) });
  }
  return {
    id: anthropicMessageId(context.requestId),
    type: 'message',
    role: 'assistant',
    model: context.requestedModel,
    content,
    stop_reason: message?.refusal ? 'refusal' : toAnthropicStopReason(choice?.finish_reason, calls.length > 0),
    stop_sequence: null,
    usage: toAnthropicUsage(completion.usage),
  };
}

/** Anthropic clients read `input` as an object; arguments that are not JSON are the model's error, said plainly. */
function toolInput(args: string): unknown {
  if (args.trim() === '') return {};
  try {
    return JSON.parse(args);
  } catch {
    throw new GatewayError('backend_error', 'the model answered a tool call whose arguments are not valid JSON');
  }
}

/** `Dialect.answerFromInternal`: the Message as JSON text. */
export function anthropicAnswerFromInternal(answer: InternalAnswers[InternalForm], context: TranslationContext): string {
  if (!('object' in answer) || answer.object !== 'chat.completion') throw new TypeError('anthropic.messages answers chat completions only');
  return JSON.stringify(anthropicMessageFromChat(answer, context));
}

/** The content block being streamed: its kind, its index, and for a tool call the OpenAI tool index. */
type OpenBlock = { kind: 'text' | 'thinking'; index: number } | { kind: 'tool'; index: number; toolIndex: number };

function event(type: string, data: Record<string, unknown>): string {
  return sseEvent(JSON.stringify({ type, ...data }), type);
}

/**
 * Internal chunks as Anthropic's stream: `message_start`, then per block `content_block_start`,
 * its deltas and `content_block_stop`, then `message_delta` (stop reason, usage) and `message_stop`.
 * A new block starts whenever the kind of content changes (reasoning → text → tool calls) and for
 * each tool call, by its OpenAI index.
 *
 * OpenAI streams report the prompt's size only at the end, so `message_start` says 0 input tokens
 * and `message_delta` carries the whole usage; the SDK takes the later values into its final Message.
 */
export class AnthropicStreamEncoder implements StreamEncoder<ChatChunk> {
  readonly #context: Pick<TranslationContext, 'requestId' | 'requestedModel'>;
  #started = false;
  #open: OpenBlock | undefined;
  #blocks = 0;
  /** Tool indexes whose block was opened, to refuse interleaved tool call deltas. */
  readonly #toolsSeen = new Set<number>();
  /** A tool call whose header came, but no arguments yet. */
  #pendingTool: { toolIndex: number; id: string; name: string } | undefined;
  #finish: FinishReason | undefined;
  #refused = false;
  #usage: ChatUsage | undefined;

  constructor(context: Pick<TranslationContext, 'requestId' | 'requestedModel'>) {
    this.#context = context;
  }

  push(chunk: ChatChunk): string {
    let out = this.#start();
    if (chunk.usage) this.#usage = chunk.usage;
    const choice = chunk.choices.find((c) => c.index === 0);
    if (!choice) return out;
    const delta = choice.delta as DeltaWithReasoning;
    const reasoning = delta.reasoning_content ?? delta.reasoning;
    if (reasoning) out += this.#text('thinking', reasoning);
    if (delta.content) out += this.#text('text', delta.content);
    if (delta.refusal) {
      this.#refused = true;
      out += this.#text('text', delta.refusal);
    }
    for (const call of delta.tool_calls ?? []) out += this.#toolCall(call);
    if (choice.finish_reason) this.#finish = choice.finish_reason;
    return out;
  }

  end(): string {
    const usage = toAnthropicUsage(this.#usage);
    return this.#start() + this.#startPendingTool() + this.#close()
      + event('message_delta', {
        delta: { stop_reason: this.#refused ? 'refusal' : toAnthropicStopReason(this.#finish, this.#toolsSeen.size > 0), stop_sequence: null },
        usage,
      })
      + event('message_stop', {});
  }

  fail(error: GatewayError): string {
    // Anthropic ends a failing stream with the error event alone: no block stop, no message_stop.
    return anthropicStreamError(error);
  }

  #start(): string {
    if (this.#started) return '';
    this.#started = true;
    return event('message_start', {
      message: {
        id: anthropicMessageId(this.#context.requestId),
        type: 'message',
        role: 'assistant',
        model: this.#context.requestedModel,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { input_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 0 },
      },
    });
  }

  #text(kind: 'text' | 'thinking', text: string): string {
    let out = '';
    if (this.#open?.kind !== kind) {
      out += this.#close();
      const index = this.#blocks++;
      this.#open = { kind, index };
      const block = kind === 'text' ? { type: 'text', text: '' } : { type: 'thinking', thinking: '', signature: '' };
      out += event('content_block_start', { index, content_block: block });
    }
    const delta = kind === 'text' ? { type: 'text_delta', text } : { type: 'thinking_delta', thinking: text };
    return out + event('content_block_delta', { index: this.#open!.index, delta });
  }

  /**
   * A tool call's block starts at its first arguments, not at its header (id and name): some servers
   * send the header early, then reasoning or text, then the arguments, and an Anthropic block cannot
   * be reopened once another one has started.
   */
  #toolCall(call: ToolCallDelta): string {
    let out = '';
    const open = this.#open;
    const args = call.function?.arguments ?? '';
    if (open?.kind === 'tool' && open.toolIndex === call.index) {
      return args ? event('content_block_delta', { index: open.index, delta: { type: 'input_json_delta', partial_json: args } }) : '';
    }
    let pending = this.#pendingTool;
    if (pending?.toolIndex !== call.index) {
      // Anthropic's blocks follow one another: a tool call whose block was closed cannot take more arguments.
      if (this.#toolsSeen.has(call.index)) {
        throw new GatewayError('backend_error', 'the backend interleaved the arguments of two tool calls, which an Anthropic stream cannot carry');
      }
      out += this.#startPendingTool();
      this.#toolsSeen.add(call.index);
      pending = { toolIndex: call.index, id: '', name: '' };
      this.#pendingTool = pending;
    }
    if (call.id) pending.id = call.id;
    if (call.function?.name) pending.name = call.function.name;
    if (!args) return out;
    out += this.#startPendingTool();
    return out + event('content_block_delta', { index: this.#open!.index, delta: { type: 'input_json_delta', partial_json: args } });
  }

  /** Opens the block of the tool call whose header came without arguments yet. */
  #startPendingTool(): string {
    const pending = this.#pendingTool;
    if (!pending) return '';
    this.#pendingTool = undefined;
    const out = this.#close();
    const index = this.#blocks++;
    this.#open = { kind: 'tool', index, toolIndex: pending.toolIndex };
    const block = { type: 'tool_use', id: pending.id || `toolu_${pending.toolIndex}`, name: pending.name, input: {} };
    return out + event('content_block_start', { index, content_block: block });
  }

  #close(): string {
    const open = this.#open;
    if (!open) return '';
    this.#open = undefined;
    return event('content_block_stop', { index: open.index });
  }
}
