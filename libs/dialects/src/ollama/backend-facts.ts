import type { ChatUsage } from '../types.ts';

/* What the chat and generate decoders read alike from an Ollama backend's final line. */

/** An id like OpenAI's (`chatcmpl-…`, `cmpl-…`, `call_…`) for an answer Ollama gives none. */
export function randomId(prefix: string, length = 24): string {
  return prefix + crypto.randomUUID().replaceAll('-', '').slice(0, length);
}

/** Ollama's counts as OpenAI's usage. */
export function ollamaUsage(response: { prompt_eval_count?: number; eval_count?: number }): ChatUsage {
  const prompt = response.prompt_eval_count ?? 0;
  const completion = response.eval_count ?? 0;
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

/** Ollama's `load_duration` in ms, when > 0. */
export function ollamaLoadMs(response: { load_duration?: number }): number | undefined {
  const ms = Math.round((response.load_duration ?? 0) / 1e6);
  return ms > 0 ? ms : undefined;
}
