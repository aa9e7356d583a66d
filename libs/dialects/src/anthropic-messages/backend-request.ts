import type {
  Base64ImageSource,
  ContentBlockParam,
  ImageBlockParam,
  MessageCreateParamsBase,
  Tool,
  ToolChoice,
} from '@anthropic-ai/sdk/resources/messages';
import type OpenAI from 'openai';
import { GatewayError } from '@homelab/bus';
import type { ChatMessage, ChatRequest, InternalRequest, PassThroughOptions } from '../types.ts';
import { unsupportedHere } from '../refusals.ts';

/*
 * Internal (OpenAI chat) request → Anthropic Messages request: for a client of another dialect whose
 * request goes to Anthropic.
 */

/**
 * Anthropic's request body. SDK 1.x types leave out `temperature`, `top_p` and `top_k`,
 * which the Messages API still takes, so they are added here.
 */
export type AnthropicRequest = Omit<MessageCreateParamsBase, 'stream'> & { temperature?: number; top_p?: number; top_k?: number };

export interface ToAnthropicOptions {
  /** `max_tokens` is required by Anthropic; used when the client sets neither max field. Default 4096. */
  defaultMaxTokens?: number;
}

/** Anthropic's `budget_tokens` per OpenAI `reasoning_effort` (Anthropic's minimum budget is 1024). */
export const ANTHROPIC_THINKING_BUDGETS: Record<string, number> = { minimal: 1024, low: 1024, medium: 4096, high: 16384, xhigh: 32768, max: 32768 };

/** A request that carries `top_k`, which vLLM and Ollama take beside OpenAI's fields. */
type ChatRequestWithTopK = ChatRequest & { top_k?: number | null };

type Turn = { role: 'user' | 'assistant'; content: ContentBlockParam[] };
type TextParts = string | ReadonlyArray<{ type: string; text?: string; refusal?: string }>;

const IMAGE_TYPES = new Set(['image/jpeg', 'image/png', 'image/gif', 'image/webp']);

/** Translates an OpenAI chat request into an Anthropic Messages request (without `stream`). */
export function toAnthropicRequest(request: ChatRequest, options: ToAnthropicOptions = {}): AnthropicRequest {
  if (request.n != null && request.n > 1) throw unsupportedHere('anthropic returns one choice: n must be 1', 'n');
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
    const topK = (request as ChatRequestWithTopK).top_k;
    if (typeof topK === 'number' && topK > 0) body.top_k = topK;
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

/**
 * The body for an Anthropic backend: the translation, with the backend's model and the stream flag.
 * `options.defaults.max_tokens` (from the lab's config) stands in when the client set no maximum.
 */
export function anthropicRequestFromInternal(internal: InternalRequest, options: PassThroughOptions): Record<string, unknown> {
  if (internal.form !== 'chat') throw new TypeError(`anthropic.messages carries chat requests, not ${internal.form}`);
  const defaultMaxTokens = options.defaults?.['max_tokens'];
  const body = toAnthropicRequest(internal.request, typeof defaultMaxTokens === 'number' ? { defaultMaxTokens } : {});
  return { ...body, model: options.model, stream: options.stream };
}
