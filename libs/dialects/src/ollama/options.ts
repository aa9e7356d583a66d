import { GatewayError } from '@homelab/bus';
import type { ChatRequest, CompletionRequest } from '../types.ts';
import { ollamaInvalidFormat } from './errors.ts';
import type { OllamaFormat, OllamaKeepAlive, OllamaOptions, OllamaThink } from './wire.ts';

/*
 * What `/api/chat` and `/api/generate` share: `options`, `format` and `think`, mapped to and from
 * the sampling fields of OpenAI's requests (the internal form). Options OpenAI has no field for
 * (num_ctx, num_keep, repeat_penalty, mirostat, …) are dropped on the way to another backend:
 * docs/dialects.md lists them.
 */

/** Sampling fields of the internal form, plus `top_k` which vLLM and Anthropic take and OpenAI does not. */
export interface InternalSampling {
  temperature?: number;
  top_p?: number;
  top_k?: number;
  seed?: number;
  stop?: string[];
  max_tokens?: number;
  frequency_penalty?: number;
  presence_penalty?: number;
}

const FLOAT_OPTIONS = ['temperature', 'top_p', 'frequency_penalty', 'presence_penalty'] as const;
const INTEGER_OPTIONS = ['seed', 'top_k', 'num_predict'] as const;

/** Ollama's own wording when an option has the wrong type (api/types.go, Options.FromMap). */
function optionTypeError(key: string, type: string): GatewayError {
  return new GatewayError('invalid_request', `option "${key}" must be of type ${type}`, { param: `options.${key}` });
}

function readFloat(options: Record<string, unknown>, key: string): number | undefined {
  const value = options[key];
  if (value == null) return undefined;
  if (typeof value !== 'number') throw optionTypeError(key, 'float32');
  return value;
}

function readInteger(options: Record<string, unknown>, key: string): number | undefined {
  const value = options[key];
  if (value == null) return undefined;
  // Go reads JSON numbers as float64 and truncates them into int fields.
  if (typeof value !== 'number') throw optionTypeError(key, 'integer');
  return Math.trunc(value);
}

function readStop(options: Record<string, unknown>): string[] | undefined {
  const value = options['stop'];
  if (value == null) return undefined;
  if (!Array.isArray(value)) throw optionTypeError('stop', 'array');
  if (!value.every((item) => typeof item === 'string')) {
    throw new GatewayError('invalid_request', 'option "stop" must be of an array of strings', { param: 'options.stop' });
  }
  return value as string[];
}

/** Ollama `options` → the internal sampling fields. `num_predict` ≤ 0 (-1 endless, -2 fill the context) sets no limit. */
export function samplingFromOptions(options: OllamaOptions | undefined): InternalSampling {
  if (!options) return {};
  const out: InternalSampling = {};
  for (const key of FLOAT_OPTIONS) {
    const value = readFloat(options, key);
    if (value !== undefined) out[key] = value;
  }
  for (const key of INTEGER_OPTIONS) {
    const value = readInteger(options, key);
    if (value === undefined) continue;
    if (key === 'num_predict') {
      if (value > 0) out.max_tokens = value;
    } else {
      out[key] = value;
    }
  }
  const stop = readStop(options);
  if (stop !== undefined && stop.length > 0) out.stop = stop;
  return out;
}

/** The internal sampling fields → Ollama `options` (undefined when there is none). */
export function optionsFromSampling(request: ChatRequest | CompletionRequest): OllamaOptions | undefined {
  const options: OllamaOptions = {};
  const maxTokens = ('max_completion_tokens' in request ? request.max_completion_tokens : undefined) ?? request.max_tokens;
  if (maxTokens != null) options.num_predict = maxTokens;
  if (request.stop != null) options.stop = typeof request.stop === 'string' ? [request.stop] : [...request.stop];
  if (request.seed != null) options.seed = request.seed;
  if (request.temperature != null) options.temperature = request.temperature;
  if (request.top_p != null) options.top_p = request.top_p;
  const topK = (request as { top_k?: unknown }).top_k;
  if (typeof topK === 'number') options.top_k = topK;
  if (request.frequency_penalty != null) options.frequency_penalty = request.frequency_penalty;
  if (request.presence_penalty != null) options.presence_penalty = request.presence_penalty;
  return Object.keys(options).length > 0 ? options : undefined;
}

/** Ollama `format` → OpenAI `response_format`; undefined for none (`""` or null). */
export function responseFormatFromOllama(format: OllamaFormat | null | undefined): ChatRequest['response_format'] {
  if (format == null || format === '') return undefined;
  if (format === 'json') return { type: 'json_object' };
  if (typeof format === 'object' && !Array.isArray(format)) return { type: 'json_schema', json_schema: { name: 'response', schema: format } };
  throw ollamaInvalidFormat(format);
}

/** OpenAI `response_format` → Ollama `format`. */
export function ollamaFormatFromResponseFormat(format: ChatRequest['response_format']): OllamaFormat | undefined {
  if (format?.type === 'json_object') return 'json';
  if (format?.type === 'json_schema') return format.json_schema.schema ?? 'json';
  return undefined;
}

/**
 * Ollama `think` → OpenAI `reasoning_effort`. `true` is `medium`, as Ollama itself reads it
 * (ThinkValue.String); `max` is OpenAI's `high`. `false` has no OpenAI equivalent: the backend's default applies.
 */
export function reasoningEffortFromThink(think: OllamaThink | null | undefined): 'low' | 'medium' | 'high' | undefined {
  if (think === true) return 'medium';
  if (think === 'max') return 'high';
  if (think === 'low' || think === 'medium' || think === 'high') return think;
  return undefined;
}

/**
 * The fields `/api/chat` and `/api/generate` share beyond the prompt, as the internal chat request
 * has them: `format`, `think`, `logprobs`.
 */
export function applyOllamaAnswerOptions(request: ChatRequest, body: { format?: OllamaFormat | null; think?: OllamaThink | null; logprobs?: boolean | null; top_logprobs?: number | null }): void {
  const responseFormat = responseFormatFromOllama(body.format);
  if (responseFormat) request.response_format = responseFormat;
  const effort = reasoningEffortFromThink(body.think);
  if (effort) request.reasoning_effort = effort;
  if (body.logprobs) {
    request.logprobs = true;
    if (body.top_logprobs) request.top_logprobs = body.top_logprobs;
  }
}

/** Fields the internal request may carry for an Ollama backend (an Ollama client's own, or the lab's). */
export interface OllamaExtras {
  keep_alive?: OllamaKeepAlive;
  think?: OllamaThink;
  top_k?: number;
}
