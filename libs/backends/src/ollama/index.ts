import type { DialectName } from '@homelab/dialects';
import { BackendOrigin } from '../http/origin.ts';
import { fetchJson, sendTo } from '../http/json-backend.ts';
import type { Backend, BackendModel } from '../types.ts';

export interface OllamaBackendOptions {
  /** Ollama's origin, e.g. `http://127.0.0.1:11434`. */
  url: string;
  connectTimeoutMs: number;
  /** Default `keep_alive` (e.g. `'30m'`, `-1`); a request's own `keep_alive` wins. */
  keepAlive?: string | number;
}

const PATHS: Partial<Record<DialectName, string>> = {
  'ollama.chat': '/api/chat',
  'ollama.generate': '/api/generate',
  'ollama.embed': '/api/embed',
  'ollama.embeddings': '/api/embeddings',
};

interface OllamaListedModel { name: string; modified_at?: string; [fact: string]: unknown }

/** The facts of `/api/tags` (every model) and `/api/ps` (loaded ones) that Ollama's clients read. */
const TAG_FACTS = ['size', 'digest', 'details', 'modified_at'] as const;
const PS_FACTS = ['expires_at', 'size_vram', 'context_length'] as const;

function pick(from: OllamaListedModel | undefined, keys: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of keys) if (from?.[key] !== undefined) out[key] = from[key];
  return out;
}

/**
 * Ollama's native API, spoken directly (keep-alive pool, undici): requests in Ollama's dialects pass
 * through as bytes; others are translated to `/api/chat`, `/api/generate` (fill-in-the-middle) and
 * `/api/embed`. No timeouts of its own: cold loads take minutes, and the lab's config sets them.
 */
export function createOllamaBackend(options: OllamaBackendOptions): Backend {
  const origin = new BackendOrigin({ provider: 'ollama', url: options.url, connectTimeoutMs: options.connectTimeoutMs });
  const headers = { 'content-type': 'application/json' };
  return {
    provider: 'ollama',
    dialects: new Set(Object.keys(PATHS) as DialectName[]),
    forms: { chat: 'ollama.chat', completion: 'ollama.generate', embeddings: 'ollama.embed' },
    ...(options.keepAlive !== undefined && { defaults: { keep_alive: options.keepAlive } }),
    send: (call) => sendTo(origin, PATHS, headers, call),
    async listModels(signal): Promise<BackendModel[]> {
      const [tags, ps] = await Promise.all(['/api/tags', '/api/ps'].map(async (path) =>
        (await fetchJson<{ models?: OllamaListedModel[] }>(origin, path, signal)).models ?? []));
      const loaded = new Map(ps!.map((m) => [m.name, m]));
      return tags!.map((m): BackendModel => {
        const modified = m.modified_at ? Date.parse(m.modified_at) : NaN;
        const facts = { ...pick(m, TAG_FACTS), ...pick(loaded.get(m.name), PS_FACTS) };
        return { id: m.name, ...(Number.isFinite(modified) && { created: Math.floor(modified / 1000) }), loaded: loaded.has(m.name), facts };
      });
    },
    close: () => origin.close(),
  };
}
