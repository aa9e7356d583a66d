import { GatewayError } from '@homelab/bus';
import type { Backend, BackendModel, ChatChunk, ChatCall, ChatStreamStats } from '../types.ts';
import { ollamaFetch, readJson, readNdjson } from './api.ts';
import {
  fromOllamaChatResponse, fromOllamaEmbedResponse, ollamaLoadMs, OllamaChatStream, toOllamaChatRequest, toOllamaEmbedRequest,
  type OllamaKeepAlive, type OllamaChatResponse, type OllamaEmbedResponse,
} from '@homelab/dialects';



export interface OllamaBackendOptions {
  /** Ollama's origin, e.g. `http://127.0.0.1:11434`. */
  url: string;
  /** TCP connect timeout. */
  connectTimeoutMs?: number;
  /** Default `keep_alive` (e.g. `'30m'`, `-1`); a request's own `keep_alive` wins. */
  keepAlive?: OllamaKeepAlive;
}

interface OllamaListedModel { name: string; model?: string; modified_at?: string }

/** The Ollama backend: native `/api/chat`, `/api/embed`, `/api/tags` + `/api/ps`. No timeouts here: cold loads take minutes and the router owns timeouts. */
export function createOllamaBackend(options: OllamaBackendOptions): Backend {
  const baseUrl = options.url.replace(/\/+$/, '');
  const keepAlive = options.keepAlive;

  async function* chatStream(call: ChatCall, stats: ChatStreamStats): AsyncGenerator<ChatChunk> {
    const body = toOllamaChatRequest(call.request, keepAlive === undefined ? { stream: true } : { stream: true, keepAlive });
    const response = await ollamaFetch(baseUrl, { method: 'POST', path: '/api/chat', body, signal: call.signal, connectTimeoutMs: options.connectTimeoutMs });
    const stream = new OllamaChatStream(call.request.model);
    for await (const line of readNdjson(response, call.signal)) {
      const chunks = stream.push(line as OllamaChatResponse);
      if (stream.done && stream.loadMs !== undefined) stats.loadMs = stream.loadMs;
      for (const chunk of chunks) yield chunk;
      if (stream.done) return;
    }
    throw new GatewayError('backend_error', 'ollama: stream ended before the final line');
  }

  return {
    provider: 'ollama',

    async chat(call, stats) {
      const body = toOllamaChatRequest(call.request, keepAlive === undefined ? { stream: false } : { stream: false, keepAlive });
      const response = await ollamaFetch(baseUrl, { method: 'POST', path: '/api/chat', body, signal: call.signal, connectTimeoutMs: options.connectTimeoutMs });
      const answer = await readJson<OllamaChatResponse>(response, call.signal);
      const loadMs = ollamaLoadMs(answer);
      if (loadMs !== undefined) stats.loadMs = loadMs;
      return fromOllamaChatResponse(answer, call.request.model);
    },

    chatStream,

    async embed(call) {
      const body = toOllamaEmbedRequest(call.request, keepAlive);
      const response = await ollamaFetch(baseUrl, { method: 'POST', path: '/api/embed', body, signal: call.signal, connectTimeoutMs: options.connectTimeoutMs });
      return fromOllamaEmbedResponse(await readJson<OllamaEmbedResponse>(response, call.signal), call.request);
    },

    async listModels(signal) {
      const [tags, ps] = await Promise.all(['/api/tags', '/api/ps'].map(async (path) => {
        const response = await ollamaFetch(baseUrl, { method: 'GET', path, signal, connectTimeoutMs: options.connectTimeoutMs });
        return (await readJson<{ models?: OllamaListedModel[] }>(response, signal)).models ?? [];
      }));
      const loaded = new Set(ps!.map((m) => m.name));
      return tags!.map((m): BackendModel => {
        const modified = m.modified_at ? Date.parse(m.modified_at) : NaN;
        return { id: m.name, ...(Number.isFinite(modified) && { created: Math.floor(modified / 1000) }), loaded: loaded.has(m.name) };
      });
    },
  };
}
