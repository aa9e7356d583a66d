import { GatewayError } from '@homelab/bus';
import type { ChatChunk, ChatCompletion, ChatUsage, Completion, TranslationContext } from '../types.ts';
import type { OllamaMetrics, OllamaToolCall } from './wire.ts';

/*
 * What the `/api/chat` and `/api/generate` encoders share: reading an internal chunk (chat or text
 * completion), assembling streamed tool calls into Ollama's whole calls with object arguments, and
 * the metrics of the final line, measured by the encoder since no backend but Ollama reports them.
 */

/** Ollama's log probability of one token (api/types.go `Logprob`). */
export interface OllamaLogprob {
  token: string;
  logprob: number;
  bytes?: number[];
  top_logprobs?: { token: string; logprob: number; bytes?: number[] }[];
}

interface ToolCallDelta {
  index: number;
  id?: string | undefined;
  function?: { name?: string | undefined; arguments?: string | undefined } | undefined;
}

/** What one internal chunk says, whatever its form. */
export interface ChunkParts {
  content: string;
  thinking: string;
  toolCalls: ToolCallDelta[];
  finishReason: string | null;
  usage: ChatUsage | undefined;
  logprobs: OllamaLogprob[] | undefined;
}

type OpenAILogprobs = { content?: { token: string; logprob: number; bytes?: number[] | null; top_logprobs?: { token: string; logprob: number; bytes?: number[] | null }[] }[] | null } | null | undefined;

function ollamaLogprobs(logprobs: OpenAILogprobs): OllamaLogprob[] | undefined {
  const content = logprobs?.content;
  if (!content?.length) return undefined;
  return content.map((entry) => ({
    token: entry.token,
    logprob: entry.logprob,
    ...(entry.bytes && { bytes: entry.bytes }),
    ...(entry.top_logprobs?.length && { top_logprobs: entry.top_logprobs.map((top) => ({ token: top.token, logprob: top.logprob, ...(top.bytes && { bytes: top.bytes }) })) }),
  }));
}

function isCompletion(chunk: ChatChunk | Completion): chunk is Completion {
  return chunk.object === 'text_completion';
}

/** Reads an internal chunk: text, reasoning (`reasoning_content` or vLLM's newer `reasoning`), tool call pieces, finish, usage. */
export function chunkParts(chunk: ChatChunk | Completion): ChunkParts {
  const usage = chunk.usage ?? undefined;
  if (isCompletion(chunk)) {
    const choice = chunk.choices[0];
    return { content: choice?.text ?? '', thinking: '', toolCalls: [], finishReason: choice?.finish_reason ?? null, usage, logprobs: undefined };
  }
  const choice = chunk.choices[0];
  const delta = (choice?.delta ?? {}) as { content?: string | null; refusal?: string | null; reasoning_content?: string | null; reasoning?: string | null; tool_calls?: ToolCallDelta[] };
  return {
    // Ollama has no refusal field: a refusal is what the model said.
    content: (delta.content ?? '') + (delta.refusal ?? ''),
    thinking: delta.reasoning_content ?? delta.reasoning ?? '',
    toolCalls: delta.tool_calls ?? [],
    finishReason: choice?.finish_reason ?? null,
    usage,
    logprobs: ollamaLogprobs(choice?.logprobs as OpenAILogprobs),
  };
}

/** Arguments text as Ollama's argument object; a GatewayError when the backend's text is not a JSON object. */
export function argumentsObject(text: string, name: string): Record<string, unknown> {
  if (text.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new GatewayError('backend_error', `the backend's arguments for tool '${name}' are not a JSON object, which Ollama's tool calls require`);
  }
  return parsed as Record<string, unknown>;
}

/** Collects OpenAI's streamed tool call pieces (by index) into Ollama's whole tool calls. */
export class ToolCallAssembler {
  readonly #calls = new Map<number, { id: string | undefined; name: string; arguments: string }>();

  get size(): number {
    return this.#calls.size;
  }

  add(pieces: readonly ToolCallDelta[]): void {
    for (const piece of pieces) {
      const call = this.#calls.get(piece.index) ?? { id: undefined, name: '', arguments: '' };
      if (piece.id) call.id = piece.id;
      if (piece.function?.name) call.name += piece.function.name;
      if (piece.function?.arguments) call.arguments += piece.function.arguments;
      this.#calls.set(piece.index, call);
    }
  }

  /** The calls so far, in Ollama's shape, and forgets them. Throws GatewayError for arguments that are not an object. */
  take(): OllamaToolCall[] {
    const calls = [...this.#calls.entries()].sort(([a], [b]) => a - b).map(([, call], index) => ({
      ...(call.id && { id: call.id }),
      function: { index, name: call.name, arguments: argumentsObject(call.arguments, call.name) },
    }));
    this.#calls.clear();
    return calls;
  }
}

/** A whole answer's tool calls in Ollama's shape. */
export function ollamaToolCalls(calls: ChatCompletion['choices'][number]['message']['tool_calls']): OllamaToolCall[] {
  return (calls ?? []).flatMap((call, index) => call.type === 'function'
    ? [{ id: call.id, function: { index, name: call.function.name, arguments: argumentsObject(call.function.arguments, call.function.name) } }]
    : []);
}

/** OpenAI's finish reason as Ollama's `done_reason`: only `length` differs from `stop` (a tool call ends with `stop` in Ollama). */
export function doneReason(finishReason: string | null | undefined): 'stop' | 'length' {
  return finishReason === 'length' ? 'length' : 'stop';
}

/** The metrics in Go's field order (Metrics in api/types.go), without the unknown ones. */
export function orderedMetrics(metrics: OllamaMetrics): OllamaMetrics {
  const out: OllamaMetrics = {};
  for (const key of ['total_duration', 'load_duration', 'prompt_eval_count', 'prompt_eval_duration', 'eval_count', 'eval_duration'] as const) {
    if (metrics[key] !== undefined) out[key] = metrics[key];
  }
  return out;
}

/** The time as Ollama writes `created_at` (RFC 3339, UTC). */
export function createdAt(): string {
  return new Date().toISOString();
}

/** The counts of the final line from the internal usage (Go's `omitempty`: none when unknown). */
export function countMetrics(usage: ChatUsage | undefined): Pick<OllamaMetrics, 'prompt_eval_count' | 'eval_count'> {
  return usage ? { prompt_eval_count: usage.prompt_tokens, eval_count: usage.completion_tokens } : {};
}

/**
 * The facts a translation may know beyond TranslationContext: `startedAt` (ms since epoch, when the
 * gateway took the request) lets a whole answer report `total_duration`.
 */
export type OllamaTranslationContext = TranslationContext & { startedAt?: number };

/** `total_duration` of a whole answer, when the context says when the request started. */
export function totalDurationSince(context: OllamaTranslationContext): Pick<OllamaMetrics, 'total_duration'> {
  return context.startedAt === undefined ? {} : { total_duration: Math.max(0, Date.now() - context.startedAt) * 1_000_000 };
}

/**
 * Measures a streamed answer from the encoder's creation: `prompt_eval_duration` until the first
 * content, `eval_duration` from there to the end, `total_duration` for all. The load time of a
 * backend that is not Ollama is unknown, so `load_duration` is left out (as Ollama omits zeros).
 */
export class AnswerClock {
  readonly #start = process.hrtime.bigint();
  #firstContent: bigint | undefined;

  markContent(): void {
    this.#firstContent ??= process.hrtime.bigint();
  }

  durations(): Pick<OllamaMetrics, 'total_duration' | 'prompt_eval_duration' | 'eval_duration'> {
    const now = process.hrtime.bigint();
    const first = this.#firstContent ?? now;
    return {
      total_duration: Number(now - this.#start),
      prompt_eval_duration: Number(first - this.#start),
      eval_duration: Number(now - first),
    };
  }
}
