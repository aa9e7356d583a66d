import type {
  Base64ImageSource,
  ContentBlockParam,
  ImageBlockParam,
  Message,
  MessageCreateParamsBase,
  RawMessageStreamEvent,
  StopReason,
  Tool,
  ToolChoice,
} from '@anthropic-ai/sdk/resources/messages';
import type OpenAI from 'openai';
import { GatewayError } from '@homelab/bus';
import type { ChatChunk, ChatCompletion, ChatMessage, ChatRequest, ChatUsage, ChunkDeltaWithReasoning } from '../types.ts';

/**
 * Anthropic's request body. SDK 1.x types leave out `temperature` and `top_p`,
 * which the Messages API still takes, so they are added here.
 */
export type AnthropicRequest = Omit<MessageCreateParamsBase, 'stream'> & { temperature?: number; top_p?: number };

/** The events of an Anthropic stream: the SDK's typed ones plus `ping` and `error`, which it handles itself. */
export type AnthropicStreamEvent =
  | RawMessageStreamEvent
  | { type: 'ping' }
  | { type: 'error'; error: { type: string; message: string } };

type ChatCompletionMessageWithReasoning = OpenAI.Chat.Completions.ChatCompletionMessage & { reasoning_content?: string };

export interface ToAnthropicOptions {
  /** `max_tokens` is required by Anthropic; used when the client sets neither max field. Default 4096. */
  defaultMaxTokens?: number;
}

/** Anthropic's `budget_tokens` per OpenAI `reasoning_effort` (Anthropic's minimum budget is 1024). */
export const ANTHROPIC_THINKING_BUDGETS: Record<string, number> = { minimal: 1024, low: 1024, medium: 4096, high: 16384, xhigh: 32768, max: 32768 };

type Turn = { role: 'user' | 'assistant'; content: ContentBlockParam[] };
type TextParts = string | ReadonlyArray<{ type: string; text?: string; refusal?: string }>;
type FinishReason = ChatCompletion['choices'][number]['finish_reason'];

const IMAGE_TYPES = new Set(['image/jpeg', 'image/png', 'image/gif', 'image/webp']);

/** Translates an OpenAI chat request into an Anthropic Messages request (without `stream`). */
export function toAnthropicRequest(request: ChatRequest, options: ToAnthropicOptions = {}): AnthropicRequest {
  if (request.n != null && request.n > 1) throw invalid('anthropic returns one choice: n must be 1', 'n');
  const system: string[] = [];
  const turns: Turn[] = [];
  for (const message of request.messages) addMessage(message, system, turns);

  const format = request.response_format;
  if (format?.type === 'json_object' || format?.type === 'json_schema') system.push(jsonInstruction(format));

  let maxTokens = request.max_completion_tokens ?? request.max_tokens ?? options.defaultMaxTokens ?? 4096;
  const budget = request.reasoning_effort ? ANTHROPIC_THINKING_BUDGETS[request.reasoning_effort] : undefined;
  // Thinking tokens count towards max_tokens, which must exceed the budget: keep the
  // requested room for the answer on top of the budget rather than starve either.
  if (budget !== undefined && maxTokens <= budget) maxTokens += budget;

  const body: AnthropicRequest = { model: request.model, max_tokens: maxTokens, messages: turns };
  if (system.length > 0) body.system = system.join('\n\n');
  if (budget !== undefined) {
    body.thinking = { type: 'enabled', budget_tokens: budget };
  } else {
    // Thinking rejects sampling changes, so they only go out without it. Newer models also
    // reject temperature and top_p together: temperature wins. OpenAI's 0..2 is clamped to 0..1.
    if (request.temperature != null) body.temperature = Math.min(1, Math.max(0, request.temperature));
    else if (request.top_p != null) body.top_p = request.top_p;
  }
  if (request.stop != null) body.stop_sequences = typeof request.stop === 'string' ? [request.stop] : request.stop;
  const userId = request.user ?? request.safety_identifier;
  if (userId) body.metadata = { user_id: userId };
  if (request.tools?.length) {
    body.tools = toAnthropicTools(request.tools, request.tool_choice);
    const choice = toAnthropicToolChoice(request.tool_choice, request.parallel_tool_calls);
    if (choice) body.tool_choice = choice;
  }
  return body;
}

function addMessage(message: ChatMessage, system: string[], turns: Turn[]): void {
  switch (message.role) {
    case 'system':
    case 'developer': {
      // Anthropic has one system prompt: instructions from anywhere in the conversation go there.
      const text = joinText(message.content);
      if (text) system.push(text);
      return;
    }
    case 'user': {
      const blocks = typeof message.content === 'string' ? textBlocks(message.content) : message.content.map(toUserBlock);
      return pushTurn(turns, 'user', blocks);
    }
    case 'assistant': {
      const blocks: ContentBlockParam[] = message.content == null ? [] : textBlocks(joinText(message.content));
      for (const call of message.tool_calls ?? []) {
        if (call.type !== 'function') throw invalid('anthropic backend supports function tool calls only', 'messages');
        blocks.push({ type: 'tool_use', id: call.id, name: call.function.name, input: parseArguments(call.function.arguments) });
      }
      return pushTurn(turns, 'assistant', blocks);
    }
    case 'tool':
      // Tool results travel in a user turn; consecutive ones merge into the same turn.
      return pushTurn(turns, 'user', [{ type: 'tool_result', tool_use_id: message.tool_call_id, content: joinText(message.content) }]);
    case 'function':
      throw invalid('function messages are not supported: use tools', 'messages');
  }
}

/** Anthropic needs user and assistant turns to alternate: same-role messages merge into one turn. */
function pushTurn(turns: Turn[], role: Turn['role'], blocks: ContentBlockParam[]): void {
  if (blocks.length === 0) return;
  const last = turns.at(-1);
  if (last?.role === role) last.content.push(...blocks);
  else turns.push({ role, content: blocks });
}

function toUserBlock(part: OpenAI.Chat.Completions.ChatCompletionContentPart): ContentBlockParam {
  if (part.type === 'text') return { type: 'text', text: part.text };
  if (part.type === 'image_url') return toImageBlock(part.image_url.url);
  throw invalid(`anthropic backend does not accept ${part.type} content`, 'messages');
}

function toImageBlock(url: string): ImageBlockParam {
  if (url.startsWith('data:')) {
    const match = /^data:([^;,]+);base64,(.*)$/s.exec(url);
    const mediaType = match?.[1];
    if (!match || !mediaType || !IMAGE_TYPES.has(mediaType)) throw invalid('image data URLs must be base64 JPEG, PNG, GIF or WebP', 'messages');
    return { type: 'image', source: { type: 'base64', media_type: mediaType as Base64ImageSource['media_type'], data: match[2]! } };
  }
  if (/^https?:\/\//i.test(url)) return { type: 'image', source: { type: 'url', url } };
  throw invalid('image_url must be a data URL or an http(s) URL', 'messages');
}

function toAnthropicTools(tools: OpenAI.Chat.Completions.ChatCompletionTool[], choice: ChatRequest['tool_choice']): Tool[] {
  // `allowed_tools` narrows the tool list for this turn; Anthropic has no such field, so filter.
  const allowed = typeof choice === 'object' && choice.type === 'allowed_tools'
    ? new Set(choice.allowed_tools.tools.map((t) => (t as { function?: { name?: string } }).function?.name))
    : undefined;
  const out: Tool[] = [];
  for (const tool of tools) {
    if (tool.type !== 'function') throw invalid('anthropic backend supports function tools only', 'tools');
    const fn = tool.function;
    if (allowed && !allowed.has(fn.name)) continue;
    out.push({
      name: fn.name,
      ...(fn.description !== undefined && { description: fn.description }),
      input_schema: (fn.parameters ?? { type: 'object', properties: {} }) as Tool.InputSchema,
    });
  }
  return out;
}

function toAnthropicToolChoice(choice: ChatRequest['tool_choice'], parallel: boolean | undefined): ToolChoice | undefined {
  const single = parallel === false ? { disable_parallel_tool_use: true } : {};
  if (choice === undefined) return parallel === false ? { type: 'auto', ...single } : undefined;
  if (choice === 'none') return { type: 'none' };
  if (choice === 'auto') return { type: 'auto', ...single };
  if (choice === 'required') return { type: 'any', ...single };
  if (choice.type === 'function') return { type: 'tool', name: choice.function.name, ...single };
  if (choice.type === 'allowed_tools') return { type: choice.allowed_tools.mode === 'required' ? 'any' : 'auto', ...single };
  throw invalid('anthropic backend supports function tools only', 'tool_choice');
}

/**
 * Anthropic has no `response_format`. Its structured outputs (`output_config.format`) work on some
 * models only, so JSON is asked for in the system prompt instead, which every model follows.
 */
function jsonInstruction(format: OpenAI.ResponseFormatJSONObject | OpenAI.ResponseFormatJSONSchema): string {
  const base = 'Reply with a single valid JSON object and nothing else: no prose, no Markdown code fences.';
  if (format.type === 'json_object' || !format.json_schema.schema) return base;
  return `${base} The object must conform to this JSON schema:\n${JSON.stringify(format.json_schema.schema)}`;
}

function parseArguments(args: string): unknown {
  if (args.trim() === '') return {};
  try {
    return JSON.parse(args);
  } catch {
    throw invalid('tool call arguments must be valid JSON', 'messages');
  }
}

function joinText(content: TextParts): string {
  if (typeof content === 'string') return content;
  let out = '';
  for (const part of content) out += part.text ?? part.refusal ?? '';
  return out;
}

/** Anthropic rejects empty text blocks. */
function textBlocks(text: string): ContentBlockParam[] {
  return text === '' ? [] : [{ type: 'text', text }];
}

function invalid(message: string, param: string): GatewayError {
  return new GatewayError('invalid_request', message, { param });
}

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
