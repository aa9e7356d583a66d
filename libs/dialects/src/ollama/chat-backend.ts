import type OpenAI from 'openai';
import { GatewayError } from '@homelab/bus';
import type { ChatChunk, ChatCompletion, ChatMessage, ChatRequest, ChunkDeltaWithReasoning, EmbeddingsRequest, EmbeddingsResponse } from '../types.ts';

// Ollama's native wire format (api/types.go, v0.12).

export interface OllamaToolCall {
  /** Sent by Ollama 0.12.10+ only. */
  id?: string;
  function: { index?: number; name: string; arguments: Record<string, unknown> };
}

export interface OllamaMessage {
  role: 'system' | 'user' | 'assistant' | 'tool';
  content: string;
  thinking?: string;
  /** Base64 without the data-URL prefix. */
  images?: string[];
  tool_calls?: OllamaToolCall[];
  tool_name?: string;
  /** Understood by Ollama 0.12.10+, ignored by older servers. */
  tool_call_id?: string;
}

export interface OllamaTool {
  type: 'function';
  function: { name: string; description?: string; parameters: Record<string, unknown> };
}

export interface OllamaOptions {
  num_predict?: number;
  stop?: string[];
  seed?: number;
  temperature?: number;
  top_p?: number;
  frequency_penalty?: number;
  presence_penalty?: number;
}

export type OllamaKeepAlive = string | number;

export interface OllamaChatRequest {
  model: string;
  messages: OllamaMessage[];
  stream: boolean;
  format?: 'json' | Record<string, unknown>;
  options?: OllamaOptions;
  tools?: OllamaTool[];
  keep_alive?: OllamaKeepAlive;
  think?: boolean | 'low' | 'medium' | 'high';
}

/** One NDJSON line of `/api/chat`, or the whole answer with `stream: false`. Durations in nanoseconds. */
export interface OllamaChatResponse {
  model?: string;
  created_at?: string;
  message?: { role?: string; content?: string; thinking?: string; tool_calls?: OllamaToolCall[] };
  done?: boolean;
  done_reason?: string;
  total_duration?: number;
  load_duration?: number;
  prompt_eval_count?: number;
  prompt_eval_duration?: number;
  eval_count?: number;
  eval_duration?: number;
  /** An error reported inside a 200 stream. */
  error?: string;
}

export interface OllamaEmbedRequest {
  model: string;
  input: string | string[];
  dimensions?: number;
  keep_alive?: OllamaKeepAlive;
}

export interface OllamaEmbedResponse {
  model?: string;
  embeddings: number[][];
  total_duration?: number;
  load_duration?: number;
  prompt_eval_count?: number;
}

/** Fields some clients send that OpenAI's types do not know. */
interface OllamaExtras {
  keep_alive?: OllamaKeepAlive;
  think?: OllamaChatRequest['think'];
}

type ContentPart = OpenAI.Chat.Completions.ChatCompletionContentPart | OpenAI.Chat.Completions.ChatCompletionContentPartRefusal;

function invalid(message: string, param?: string): GatewayError {
  return new GatewayError('invalid_request', message, param === undefined ? {} : { param });
}

/** Text parts joined by newlines; `image_url` parts must be base64 data URLs, since Ollama cannot fetch URLs. */
function readContent(content: string | readonly ContentPart[] | null | undefined, at: string): { text: string; images?: string[] } {
  if (content == null) return { text: '' };
  if (typeof content === 'string') return { text: content };
  const texts: string[] = [];
  let images: string[] | undefined;
  for (const part of content) {
    switch (part.type) {
      case 'text': texts.push(part.text); break;
      case 'refusal': texts.push(part.refusal); break;
      case 'image_url': {
        const url = part.image_url.url;
        const comma = url.indexOf(',');
        if (!url.startsWith('data:') || comma < 0 || !url.slice(0, comma).endsWith(';base64')) {
          throw invalid('Ollama cannot fetch image URLs: send the image inline as a base64 data URL (data:image/png;base64,...)', `${at}.content`);
        }
        (images ??= []).push(url.slice(comma + 1));
        break;
      }
      default: throw invalid(`content part type '${part.type}' is not supported by Ollama`, `${at}.content`);
    }
  }
  return images ? { text: texts.join('\n'), images } : { text: texts.join('\n') };
}

function toOllamaToolCalls(calls: NonNullable<OpenAI.Chat.Completions.ChatCompletionAssistantMessageParam['tool_calls']>, at: string, names: Map<string, string>): OllamaToolCall[] {
  return calls.map((call, i) => {
    if (call.type !== 'function') throw invalid('custom tool calls are not supported by Ollama', `${at}.tool_calls`);
    names.set(call.id, call.function.name);
    let args: unknown;
    try {
      args = call.function.arguments === '' ? {} : JSON.parse(call.function.arguments);
    } catch {
      throw invalid(`tool call arguments are not valid JSON (${call.function.name})`, `${at}.tool_calls[${i}].function.arguments`);
    }
    if (args === null || typeof args !== 'object' || Array.isArray(args)) throw invalid(`tool call arguments must be a JSON object (${call.function.name})`, `${at}.tool_calls[${i}].function.arguments`);
    return { id: call.id, function: { name: call.function.name, arguments: args as Record<string, unknown> } };
  });
}

function toOllamaMessage(message: ChatMessage, at: string, toolNames: Map<string, string>): OllamaMessage {
  switch (message.role) {
    case 'system':
    case 'developer':
      return { role: 'system', content: readContent(message.content, at).text };
    case 'user': {
      const { text, images } = readContent(message.content, at);
      return images ? { role: 'user', content: text, images } : { role: 'user', content: text };
    }
    case 'assistant': {
      const out: OllamaMessage = { role: 'assistant', content: readContent(message.content, at).text };
      if (message.tool_calls?.length) out.tool_calls = toOllamaToolCalls(message.tool_calls, at, toolNames);
      return out;
    }
    case 'tool': {
      const out: OllamaMessage = { role: 'tool', content: readContent(message.content, at).text, tool_call_id: message.tool_call_id };
      const name = toolNames.get(message.tool_call_id);
      if (name !== undefined) out.tool_name = name;
      return out;
    }
    case 'function':
      return { role: 'tool', content: message.content ?? '', tool_name: message.name };
    default:
      throw invalid(`unknown message role '${(message as { role: string }).role}'`, `${at}.role`);
  }
}

function toOllamaTools(tools: readonly OpenAI.Chat.Completions.ChatCompletionTool[]): OllamaTool[] {
  return tools.map((tool, i) => {
    if (tool.type !== 'function') throw invalid('custom tools are not supported by Ollama', `tools[${i}]`);
    const fn = tool.function;
    return {
      type: 'function',
      function: {
        name: fn.name,
        ...(fn.description !== undefined && { description: fn.description }),
        // Ollama requires a parameters object; OpenAI lets a tool take none.
        parameters: fn.parameters ?? { type: 'object', properties: {} },
      },
    };
  });
}

/** OpenAI chat request → Ollama `/api/chat` body. Throws GatewayError invalid_request for what Ollama cannot take. */
export function toOllamaChatRequest(request: ChatRequest, settings: { stream: boolean; keepAlive?: OllamaKeepAlive }): OllamaChatRequest {
  if (request.n != null && request.n > 1) throw invalid('Ollama returns one choice per request: n must be 1', 'n');
  const toolNames = new Map<string, string>();
  const out: OllamaChatRequest = {
    model: request.model,
    messages: request.messages.map((m, i) => toOllamaMessage(m, `messages[${i}]`, toolNames)),
    stream: settings.stream,
  };

  // Ollama has no tool_choice: 'none' is honoured by not offering the tools.
  if (request.tools?.length && request.tool_choice !== 'none') out.tools = toOllamaTools(request.tools);

  const format = request.response_format;
  if (format?.type === 'json_object') out.format = 'json';
  else if (format?.type === 'json_schema') out.format = format.json_schema.schema ?? 'json';

  const options: OllamaOptions = {};
  const maxTokens = request.max_completion_tokens ?? request.max_tokens;
  if (maxTokens != null) options.num_predict = maxTokens;
  if (request.stop != null) options.stop = typeof request.stop === 'string' ? [request.stop] : [...request.stop];
  if (request.seed != null) options.seed = request.seed;
  if (request.temperature != null) options.temperature = request.temperature;
  if (request.top_p != null) options.top_p = request.top_p;
  if (request.frequency_penalty != null) options.frequency_penalty = request.frequency_penalty;
  if (request.presence_penalty != null) options.presence_penalty = request.presence_penalty;
  if (Object.keys(options).length > 0) out.options = options;

  const extras = request as ChatRequest & OllamaExtras;
  const keepAlive = extras.keep_alive ?? settings.keepAlive;
  if (keepAlive !== undefined) out.keep_alive = keepAlive;
  if (extras.think !== undefined) out.think = extras.think;
  return out;
}

function randomId(prefix: string, length = 24): string {
  return prefix + crypto.randomUUID().replaceAll('-', '').slice(0, length);
}

type FinishReason = 'stop' | 'length' | 'tool_calls';

function finishReason(doneReason: string | undefined, hadToolCalls: boolean): FinishReason {
  if (hadToolCalls) return 'tool_calls';
  return doneReason === 'length' ? 'length' : 'stop'; // stop, load, unload
}

function usageOf(response: OllamaChatResponse): OpenAI.Completions.CompletionUsage {
  const prompt = response.prompt_eval_count ?? 0;
  const completion = response.eval_count ?? 0;
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

/** Ollama's `load_duration` in ms, when > 0. */
export function ollamaLoadMs(response: { load_duration?: number }): number | undefined {
  const ms = Math.round((response.load_duration ?? 0) / 1e6);
  return ms > 0 ? ms : undefined;
}

function inStreamError(message: string): GatewayError {
  return new GatewayError('backend_error', `ollama: ${message}`);
}

/**
 * Turns the NDJSON lines of one `/api/chat` stream into OpenAI `chat.completion.chunk`s:
 * role first, then content / reasoning / tool calls, then the finish chunk and a usage chunk.
 */
export class OllamaChatStream {
  readonly id = randomId('chatcmpl-');
  readonly created = Math.floor(Date.now() / 1000);
  model: string;
  /** Set from the final line when Ollama had to load the model. */
  loadMs: number | undefined;
  done = false;
  #started = false;
  #toolCalls = 0;

  constructor(requestModel: string) {
    this.model = requestModel;
  }

  push(line: OllamaChatResponse): ChatChunk[] {
    if (line.error !== undefined) throw inStreamError(line.error);
    if (line.model) this.model = line.model;
    const chunks: ChatChunk[] = [];
    const message = line.message;
    const delta: ChunkDeltaWithReasoning = {};
    let emit = false;
    if (!this.#started) {
      this.#started = true;
      delta.role = 'assistant';
      delta.content = '';
      emit = true;
    }
    if (message?.thinking) { delta.reasoning_content = message.thinking; emit = true; }
    if (message?.content) { delta.content = message.content; emit = true; }
    if (message?.tool_calls?.length) {
      delta.tool_calls = message.tool_calls.map((call) => ({
        index: this.#toolCalls++,
        id: call.id || randomId('call_'),
        type: 'function' as const,
        function: { name: call.function.name, arguments: JSON.stringify(call.function.arguments ?? {}) },
      }));
      emit = true;
    }
    if (emit) chunks.push(this.#chunk(delta, null));
    if (line.done) {
      this.done = true;
      this.loadMs = ollamaLoadMs(line);
      chunks.push(this.#chunk({}, finishReason(line.done_reason, this.#toolCalls > 0)));
      chunks.push({ id: this.id, object: 'chat.completion.chunk', created: this.created, model: this.model, choices: [], usage: usageOf(line) });
    }
    return chunks;
  }

  #chunk(delta: ChunkDeltaWithReasoning, finish: FinishReason | null): ChatChunk {
    return { id: this.id, object: 'chat.completion.chunk', created: this.created, model: this.model, choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }] };
  }
}

/** A whole `/api/chat` answer (`stream: false`) → OpenAI `chat.completion`. */
export function fromOllamaChatResponse(response: OllamaChatResponse, requestModel: string): ChatCompletion {
  if (response.error !== undefined) throw inStreamError(response.error);
  const message = response.message ?? {};
  const toolCalls = (message.tool_calls ?? []).map((call) => ({
    id: call.id || randomId('call_'),
    type: 'function' as const,
    function: { name: call.function.name, arguments: JSON.stringify(call.function.arguments ?? {}) },
  }));
  const out: OpenAI.Chat.Completions.ChatCompletionMessage & { reasoning_content?: string } = { role: 'assistant', content: message.content ?? '', refusal: null };
  if (toolCalls.length > 0) out.tool_calls = toolCalls;
  if (message.thinking) out.reasoning_content = message.thinking;
  return {
    id: randomId('chatcmpl-'),
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: response.model || requestModel,
    choices: [{ index: 0, message: out, finish_reason: finishReason(response.done_reason, toolCalls.length > 0), logprobs: null }],
    usage: usageOf(response),
  };
}

/** OpenAI embeddings request → Ollama `/api/embed` body (text inputs only: Ollama takes no token arrays). */
export function toOllamaEmbedRequest(request: EmbeddingsRequest, keepAlive?: OllamaKeepAlive): OllamaEmbedRequest {
  const input = request.input;
  const isText = typeof input === 'string' || (Array.isArray(input) && input.every((item) => typeof item === 'string'));
  if (!isText) throw invalid('Ollama embeds text only: input must be a string or an array of strings', 'input');
  const out: OllamaEmbedRequest = { model: request.model, input: input as string | string[] };
  if (request.dimensions != null) out.dimensions = request.dimensions;
  const extra = (request as EmbeddingsRequest & OllamaExtras).keep_alive ?? keepAlive;
  if (extra !== undefined) out.keep_alive = extra;
  return out;
}

/** Ollama `/api/embed` answer → OpenAI embeddings list; `encoding_format: 'base64'` gives little-endian float32 base64 as OpenAI does. */
export function fromOllamaEmbedResponse(response: OllamaEmbedResponse, request: EmbeddingsRequest): EmbeddingsResponse {
  const base64 = request.encoding_format === 'base64';
  const prompt = response.prompt_eval_count ?? 0;
  return {
    object: 'list',
    model: response.model || request.model,
    data: response.embeddings.map((vector, index) => ({
      object: 'embedding',
      index,
      // The SDK decodes base64 itself; the type only knows number[].
      embedding: base64 ? (Buffer.from(new Float32Array(vector).buffer).toString('base64') as unknown as number[]) : vector,
    })),
    usage: { prompt_tokens: prompt, total_tokens: prompt },
  };
}
