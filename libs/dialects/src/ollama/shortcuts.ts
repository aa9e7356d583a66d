import { createdAt } from './encoding.ts';
import type { OllamaKeepAlive } from './wire.ts';

/*
 * Requests Ollama answers without running a model: a chat without messages or a generate without
 * a prompt loads the model (`done_reason: "load"`), and unloads it with `keep_alive: 0` (Open
 * WebUI's "unload" button sends that); an embed without input answers no vectors. For a backend
 * that is not Ollama (nothing to load) the gateway answers these itself with what Ollama would
 * send: always one JSON object, even when the request streams. Undefined: a real request.
 */

const UNITS: Record<string, number> = { ns: 1e-9, us: 1e-6, 'µs': 1e-6, 'μs': 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };
const DURATION = /^([+-]?)((?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+)$/;
const PART = /(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g;

/** `keep_alive` in seconds as Ollama reads it (a number is seconds, a string a Go duration); negative = forever. */
export function keepAliveSeconds(value: OllamaKeepAlive | null | undefined): number | undefined {
  if (typeof value === 'number') return value;
  if (typeof value !== 'string') return undefined;
  if (/^[+-]?0$/.test(value)) return 0;
  const match = DURATION.exec(value);
  if (!match) return undefined;
  let seconds = 0;
  for (const [, amount, unit] of match[2]!.matchAll(PART)) seconds += Number(amount) * UNITS[unit!]!;
  return match[1] === '-' ? -seconds : seconds;
}

/** `/api/chat` with no messages: Ollama unloads when `keep_alive` is under a second (it compares whole seconds), else loads. */
export function ollamaChatShortcut(body: { model: string; messages?: unknown[] | null; keep_alive?: OllamaKeepAlive | null }): string | undefined {
  if (body.messages?.length) return undefined;
  const seconds = keepAliveSeconds(body.keep_alive);
  const unload = seconds !== undefined && seconds >= 0 && seconds < 1;
  return JSON.stringify({ model: body.model, created_at: createdAt(), message: { role: 'assistant', content: '' }, done: true, done_reason: unload ? 'unload' : 'load' });
}

/** `/api/generate` with an empty prompt: unload with `keep_alive` exactly 0, else load. */
export function ollamaGenerateShortcut(body: { model: string; prompt?: string | null; keep_alive?: OllamaKeepAlive | null }): string | undefined {
  if (body.prompt) return undefined;
  const unload = keepAliveSeconds(body.keep_alive) === 0;
  return JSON.stringify({ model: body.model, created_at: createdAt(), response: '', done: true, done_reason: unload ? 'unload' : 'load' });
}

/** `/api/embed` with no input (absent, `""` or `[]`): no vectors. */
export function ollamaEmbedShortcut(body: { model: string; input?: unknown }): string | undefined {
  const input = body.input;
  const empty = input == null || input === '' || (Array.isArray(input) && input.length === 0);
  return empty ? JSON.stringify({ model: body.model, embeddings: [] }) : undefined;
}

/** `/api/embeddings` with an empty prompt: an empty vector. */
export function ollamaEmbeddingsShortcut(body: { prompt?: string | null }): string | undefined {
  return body.prompt ? undefined : JSON.stringify({ embedding: [] });
}
