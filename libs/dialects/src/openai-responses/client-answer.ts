import { createHash } from 'node:crypto';
import type OpenAI from 'openai';
import type { GatewayError } from '@homelab/bus';
import { sseEvent } from '../framing.ts';
import type { ChatChunk, ChatCompletion, ChatUsage, ChunkDeltaWithReasoning, StreamEncoder, TranslationContext } from '../types.ts';

/*
 * Internal chat answers as OpenAI Responses: a whole ChatCompletion as one Response object, and a
 * stream of chat chunks as the Responses API's semantic events (response.created, output items,
 * content parts, deltas, …, response.completed), each with its sequence_number, and no [DONE].
 * The Response echoes the client's request (instructions, tools, text, …) as OpenAI's does, read from
 * client's request (the `body` the worker hands over).
 */

export type ResponseStatus = 'completed' | 'incomplete' | 'failed' | 'in_progress';

export interface OutputTextPart { type: 'output_text'; annotations: unknown[]; logprobs: unknown[]; text: string }
export interface MessageOutputItem { id: string; type: 'message'; status: 'in_progress' | 'completed' | 'incomplete'; content: OutputTextPart[]; role: 'assistant' }
export interface FunctionCallOutputItem { id: string; type: 'function_call'; status: 'in_progress' | 'completed' | 'incomplete'; arguments: string; call_id: string; name: string }
export interface ReasoningOutputItem { id: string; type: 'reasoning'; summary: { type: 'summary_text'; text: string }[]; content: { type: 'reasoning_text'; text: string }[]; status?: 'in_progress' | 'completed' | 'incomplete' }
export type OutputItem = MessageOutputItem | FunctionCallOutputItem | ReasoningOutputItem;

export interface ResponsesUsage {
  input_tokens: number;
  input_tokens_details: { cached_tokens: number };
  output_tokens: number;
  output_tokens_details: { reasoning_tokens: number };
  total_tokens: number;
}

/** The Response object, with OpenAI's fields in OpenAI's order. */
export interface ResponseObject {
  id: string;
  object: 'response';
  created_at: number;
  status: ResponseStatus;
  background: boolean;
  error: { code: string; message: string } | null;
  incomplete_details: { reason: string } | null;
  instructions: unknown;
  max_output_tokens: number | null;
  max_tool_calls: number | null;
  model: string;
  output: OutputItem[];
  parallel_tool_calls: boolean;
  previous_response_id: string | null;
  reasoning: { effort: unknown; summary: unknown };
  service_tier: string;
  store: boolean;
  temperature: number;
  text: { format: unknown; verbosity: unknown };
  tool_choice: unknown;
  tools: unknown[];
  top_logprobs: number;
  top_p: number;
  truncation: string;
  usage: ResponsesUsage | null;
  user: string | null;
  metadata: Record<string, string>;
}

type Echo = Pick<ResponseObject,
  'instructions' | 'max_output_tokens' | 'max_tool_calls' | 'parallel_tool_calls' | 'previous_response_id' | 'reasoning' | 'service_tier'
  | 'store' | 'temperature' | 'text' | 'tool_choice' | 'tools' | 'top_logprobs' | 'top_p' | 'truncation' | 'user' | 'metadata'>;

type AssistantMessage = OpenAI.Chat.Completions.ChatCompletionMessage & { reasoning_content?: string | null; reasoning?: string | null };
type FinishReason = ChatCompletion['choices'][number]['finish_reason'];

/** The Response id of a request: derived from the request id, so every part of the gateway can name it. */
export function responseIdFor(requestId: string): string {
  return derivedId('resp', requestId, 'response');
}

function derivedId(prefix: string, requestId: string, part: string): string {
  return `${prefix}_${createHash('sha256').update(`${requestId}\0${part}`).digest('hex').slice(0, 48)}`;
}

/** The request fields a Response repeats, with OpenAI's defaults where the client left them out. */
export function responseEcho(clientRequest: unknown): Echo {
  const request = isRecord(clientRequest) ? clientRequest : {};
  const reasoning = isRecord(request['reasoning']) ? request['reasoning'] : {};
  const text = isRecord(request['text']) ? request['text'] : {};
  return {
    instructions: request['instructions'] ?? null,
    max_output_tokens: numberOr(request['max_output_tokens'], null),
    max_tool_calls: numberOr(request['max_tool_calls'], null),
    parallel_tool_calls: typeof request['parallel_tool_calls'] === 'boolean' ? request['parallel_tool_calls'] : true,
    previous_response_id: typeof request['previous_response_id'] === 'string' ? request['previous_response_id'] : null,
    reasoning: { effort: reasoning['effort'] ?? null, summary: reasoning['summary'] ?? null },
    service_tier: 'default',
    store: request['store'] !== false,
    temperature: numberOr(request['temperature'], 1),
    text: { format: text['format'] ?? { type: 'text' }, verbosity: text['verbosity'] ?? 'medium' },
    tool_choice: request['tool_choice'] ?? 'auto',
    tools: Array.isArray(request['tools']) ? request['tools'] : [],
    top_logprobs: numberOr(request['top_logprobs'], 0),
    top_p: numberOr(request['top_p'], 1),
    truncation: typeof request['truncation'] === 'string' ? request['truncation'] : 'disabled',
    user: typeof request['user'] === 'string' ? request['user'] : null,
    metadata: isRecord(request['metadata']) ? (request['metadata'] as Record<string, string>) : {},
  };
}

/** The Responses usage of a chat usage. */
export function responsesUsage(usage: ChatUsage | null | undefined): ResponsesUsage | null {
  if (!usage) return null;
  return {
    input_tokens: usage.prompt_tokens,
    input_tokens_details: { cached_tokens: usage.prompt_tokens_details?.cached_tokens ?? 0 },
    output_tokens: usage.completion_tokens,
    output_tokens_details: { reasoning_tokens: usage.completion_tokens_details?.reasoning_tokens ?? 0 },
    total_tokens: usage.total_tokens ?? usage.prompt_tokens + usage.completion_tokens,
  };
}

/** A finish reason as the Response's status and why it is incomplete. */
export function responseStatus(finishReason: FinishReason | string | null | undefined): { status: 'completed' | 'incomplete'; incomplete: { reason: string } | null } {
  if (finishReason === 'length') return { status: 'incomplete', incomplete: { reason: 'max_output_tokens' } };
  if (finishReason === 'content_filter') return { status: 'incomplete', incomplete: { reason: 'content_filter' } };
  return { status: 'completed', incomplete: null };
}

interface ResponseParts {
  status: ResponseStatus;
  output: OutputItem[];
  usage: ResponsesUsage | null;
  incomplete?: { reason: string } | null;
  error?: { code: string; message: string } | null;
}

/** Builds Response objects for one request: the same id, model, time and echo in every event. */
class ResponseShell {
  readonly id: string;
  readonly #context: TranslationContext;
  readonly #echo: Echo;

  constructor(context: TranslationContext, clientRequest: unknown) {
    this.#context = context;
    this.id = context.responseId ?? responseIdFor(context.requestId);
    this.#echo = responseEcho(clientRequest);
  }

  /** Item ids derive from the response id: unique in every stored conversation. */
  itemId(prefix: 'msg' | 'fc' | 'rs' | 'call', index: number): string {
    return derivedId(prefix, this.id, `${prefix}:${index}`);
  }

  response(parts: ResponseParts): ResponseObject {
    const echo = this.#echo;
    return {
      id: this.id, object: 'response', created_at: this.#context.created, status: parts.status, background: false,
      error: parts.error ?? null, incomplete_details: parts.incomplete ?? null, instructions: echo.instructions,
      max_output_tokens: echo.max_output_tokens, max_tool_calls: echo.max_tool_calls, model: this.#context.requestedModel,
      output: parts.output, parallel_tool_calls: echo.parallel_tool_calls, previous_response_id: echo.previous_response_id,
      reasoning: echo.reasoning, service_tier: echo.service_tier, store: echo.store, temperature: echo.temperature, text: echo.text,
      tool_choice: echo.tool_choice, tools: echo.tools, top_logprobs: echo.top_logprobs, top_p: echo.top_p, truncation: echo.truncation,
      usage: parts.usage, user: echo.user, metadata: echo.metadata,
    };
  }
}

/** A whole chat completion as a Response object. */
export function responseFromChat(answer: ChatCompletion, context: TranslationContext, clientRequest: unknown): ResponseObject {
  const shell = new ResponseShell(context, clientRequest);
  const choice = answer.choices[0];
  const message = choice?.message as AssistantMessage | undefined;
  const { status, incomplete } = responseStatus(choice?.finish_reason);
  const output: OutputItem[] = [];
  const reasoning = message?.reasoning_content ?? message?.reasoning;
  if (reasoning) output.push({ id: shell.itemId('rs', 0), type: 'reasoning', summary: [], content: [{ type: 'reasoning_text', text: reasoning }] });
  const toolCalls = (message?.tool_calls ?? []).filter((call) => call.type === 'function');
  const text = [message?.content, message?.refusal].filter(Boolean).join('');
  if (text || toolCalls.length === 0) {
    output.push({ id: shell.itemId('msg', 0), type: 'message', status: status === 'completed' ? 'completed' : 'incomplete', content: [outputText(text)], role: 'assistant' });
  }
  for (const [index, call] of toolCalls.entries()) {
    output.push({ id: shell.itemId('fc', index), type: 'function_call', status: 'completed', arguments: call.function.arguments, call_id: call.id, name: call.function.name });
  }
  return shell.response({ status, output, usage: responsesUsage(answer.usage), incomplete });
}

function outputText(text: string): OutputTextPart {
  return { type: 'output_text', annotations: [], logprobs: [], text };
}

/** The item being streamed, with what the events about it need. */
type OpenItem =
  | { kind: 'reasoning'; index: number; item: ReasoningOutputItem; text: string }
  | { kind: 'message'; index: number; item: MessageOutputItem; text: string }
  | { kind: 'call'; index: number; item: FunctionCallOutputItem; toolIndex: number };

/**
 * Internal chat chunks as the Responses API's stream. Each kind of output (reasoning, text, a tool
 * call) is an output item that opens when its first delta arrives and closes when another kind
 * starts or the answer ends; parallel tool calls stay open together until then, so a delta for any
 * of them still has its item. Usage arrives after the finish reason, so the items close and the
 * terminal event goes out in `end()`.
 */
export class ResponsesStreamEncoder implements StreamEncoder<ChatChunk> {
  readonly #shell: ResponseShell;
  readonly #output: OutputItem[] = [];
  #open: OpenItem[] = [];
  #sequence = 0;
  #started = false;
  #finishReason: FinishReason | undefined;
  #usage: ChatUsage | undefined;
  #messages = 0;
  #calls = 0;
  /** The Response of the terminal event, once `end()` built it (for the response store). */
  response: ResponseObject | undefined;

  constructor(context: TranslationContext, clientRequest: unknown) {
    this.#shell = new ResponseShell(context, clientRequest);
  }

  push(chunk: ChatChunk): string {
    let out = this.#start();
    if (chunk.usage) this.#usage = chunk.usage;
    const choice = chunk.choices[0];
    if (!choice) return out;
    const delta = choice.delta as ChunkDeltaWithReasoning & { reasoning?: string | null };
    const reasoning = delta.reasoning_content ?? delta.reasoning;
    if (reasoning) out += this.#reasoningDelta(reasoning);
    const text = (delta.content ?? '') + (delta.refusal ?? '');
    if (text) out += this.#textDelta(text);
    for (const call of delta.tool_calls ?? []) out += this.#toolCallDelta(call);
    if (choice.finish_reason) this.#finishReason = choice.finish_reason;
    return out;
  }

  end(): string {
    let out = this.#start();
    const { status, incomplete } = responseStatus(this.#finishReason);
    out += this.#closeAll(status === 'completed' ? 'completed' : 'incomplete');
    const response = this.#shell.response({ status, output: this.#output, usage: responsesUsage(this.#usage), incomplete });
    this.response = response;
    return out + this.#event(status === 'completed' ? 'response.completed' : 'response.incomplete', { response });
  }

  /**
   * An error after content: an `error` event (the SDKs throw it as an APIError) and then
   * `response.failed`, the terminal event, with the output so far.
   */
  fail(error: GatewayError): string {
    let out = this.#start();
    for (const open of this.#open) finalize(open, 'incomplete');
    this.#open = [];
    out += this.#event('error', { code: error.code, message: error.message, param: error.param });
    const failure = { code: error.code === 'rate_limited' ? 'rate_limit_exceeded' : 'server_error', message: error.message };
    const response = this.#shell.response({ status: 'failed', output: this.#output, usage: responsesUsage(this.#usage), error: failure });
    return out + this.#event('response.failed', { response });
  }

  #start(): string {
    if (this.#started) return '';
    this.#started = true;
    const response = this.#shell.response({ status: 'in_progress', output: [], usage: null });
    return this.#event('response.created', { response }) + this.#event('response.in_progress', { response });
  }

  #reasoningDelta(delta: string): string {
    let out = '';
    let open = this.#open.find((item) => item.kind === 'reasoning');
    if (!open) {
      out += this.#closeAll('completed');
      const item: ReasoningOutputItem = { id: this.#shell.itemId('rs', this.#output.length), type: 'reasoning', summary: [], content: [], status: 'in_progress' };
      open = { kind: 'reasoning', index: this.#output.length, item, text: '' };
      out += this.#addItem(open);
      out += this.#event('response.content_part.added', { item_id: item.id, output_index: open.index, content_index: 0, part: { type: 'reasoning_text', text: '' } });
    }
    open.text += delta;
    return out + this.#event('response.reasoning_text.delta', { item_id: open.item.id, output_index: open.index, content_index: 0, delta });
  }

  #textDelta(delta: string): string {
    let out = '';
    let open = this.#open.find((item) => item.kind === 'message');
    if (!open) {
      out += this.#closeAll('completed');
      const item: MessageOutputItem = { id: this.#shell.itemId('msg', this.#messages++), type: 'message', status: 'in_progress', content: [], role: 'assistant' };
      open = { kind: 'message', index: this.#output.length, item, text: '' };
      out += this.#addItem(open);
      out += this.#event('response.content_part.added', { item_id: item.id, output_index: open.index, content_index: 0, part: outputText('') });
    }
    open.text += delta;
    return out + this.#event('response.output_text.delta', { item_id: open.item.id, output_index: open.index, content_index: 0, delta, logprobs: [] });
  }

  #toolCallDelta(call: NonNullable<ChunkDeltaWithReasoning['tool_calls']>[number]): string {
    let out = '';
    let open = this.#open.find((item) => item.kind === 'call' && item.toolIndex === call.index);
    if (!open) {
      if (this.#open.some((item) => item.kind !== 'call')) out += this.#closeAll('completed');
      const number = this.#calls++;
      const item: FunctionCallOutputItem = {
        id: this.#shell.itemId('fc', number), type: 'function_call', status: 'in_progress', arguments: '',
        call_id: call.id ?? this.#shell.itemId('call', number), name: call.function?.name ?? '',
      };
      open = { kind: 'call', index: this.#output.length, item, toolIndex: call.index };
      out += this.#addItem(open);
    }
    const piece = call.function?.arguments;
    if (!piece) return out;
    const item = open.item as FunctionCallOutputItem;
    item.arguments += piece;
    return out + this.#event('response.function_call_arguments.delta', { item_id: item.id, output_index: open.index, delta: piece });
  }

  #addItem(open: OpenItem): string {
    this.#output.push(open.item);
    this.#open.push(open);
    return this.#event('response.output_item.added', { output_index: open.index, item: open.item });
  }

  /** Closes every open item, in output order, with its done events. */
  #closeAll(status: 'completed' | 'incomplete'): string {
    let out = '';
    for (const open of this.#open) {
      const { item, index } = open;
      finalize(open, status);
      if (open.kind === 'reasoning') {
        out += this.#event('response.reasoning_text.done', { item_id: item.id, output_index: index, content_index: 0, text: open.text });
        out += this.#event('response.content_part.done', { item_id: item.id, output_index: index, content_index: 0, part: open.item.content[0] });
      } else if (open.kind === 'message') {
        out += this.#event('response.output_text.done', { item_id: item.id, output_index: index, content_index: 0, text: open.text, logprobs: [] });
        out += this.#event('response.content_part.done', { item_id: item.id, output_index: index, content_index: 0, part: open.item.content[0] });
      } else {
        out += this.#event('response.function_call_arguments.done', { item_id: item.id, output_index: index, arguments: open.item.arguments });
      }
      out += this.#event('response.output_item.done', { output_index: index, item });
    }
    this.#open = [];
    return out;
  }

  #event(type: string, fields: Record<string, unknown>): string {
    return sseEvent(JSON.stringify({ type, ...fields, sequence_number: this.#sequence++ }), type);
  }
}

/** An item as it ends: its text as its one content part, and its status (a cut-off answer's text is incomplete). */
function finalize(open: OpenItem, status: 'completed' | 'incomplete'): void {
  if (open.kind === 'reasoning') {
    open.item.content = [{ type: 'reasoning_text', text: open.text }];
    open.item.status = status === 'incomplete' ? 'incomplete' : 'completed';
  } else if (open.kind === 'message') {
    open.item.content = [outputText(open.text)];
    open.item.status = status;
  } else {
    open.item.status = status === 'incomplete' ? 'incomplete' : 'completed';
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function numberOr<T>(value: unknown, fallback: T): number | T {
  return typeof value === 'number' ? value : fallback;
}
