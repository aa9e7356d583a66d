import { GatewayError } from '@homelab/bus';
import { completionNotSupported, type DialectName } from '@homelab/dialects';
import { BackendOrigin } from '../http/origin.ts';
import { fetchJson, sendTo } from '../http/json-backend.ts';
import type { Backend, BackendModel } from '../types.ts';

export interface VllmBackendOptions {
  /** The server's origin, e.g. `http://192.168.1.7:8000`. */
  url: string;
  /** vLLM's `--api-key`, when it was started with one. */
  apiKey?: string;
  connectTimeoutMs: number;
}

/** Where each dialect vLLM speaks lives on its OpenAI-compatible server. */
const PATHS: Partial<Record<DialectName, string>> = {
  'openai.chat': '/v1/chat/completions',
  'openai.completions': '/v1/completions',
  'openai.embeddings': '/v1/embeddings',
};

/**
 * vLLM's OpenAI-compatible server, spoken directly on its wire format: requests in OpenAI's chat,
 * completions and embeddings dialects pass through as bytes (keep-alive pool, undici).
 */
export function createVllmBackend(options: VllmBackendOptions): Backend {
  const origin = new BackendOrigin({ provider: 'vllm', url: options.url, connectTimeoutMs: options.connectTimeoutMs });
  const auth: Record<string, string> = options.apiKey ? { authorization: `Bearer ${options.apiKey}` } : {};
  const headers = { 'content-type': 'application/json', ...auth };
  return {
    provider: 'vllm',
    dialects: new Set(Object.keys(PATHS) as DialectName[]),
    forms: { chat: 'openai.chat', completion: 'openai.completions', embeddings: 'openai.embeddings' },
    // vLLM's completions answer `suffix` with 400 "suffix is not currently supported".
    fillInTheMiddle: false,
    send: (call) => sendTo(origin, PATHS, headers, call).catch((err: unknown) => { throw call.dialect === 'openai.completions' ? explainSuffix(err) : err; }),
    async listModels(signal): Promise<BackendModel[]> {
      const list = await fetchJson<{ data?: { id: string; created?: number }[] }>(origin, '/v1/models', signal, { headers: auth });
      return (list.data ?? []).map((m) => ({ id: m.id, ...(typeof m.created === 'number' && { created: m.created }) }));
    },
    async countTokens(request, signal): Promise<number> {
      const answer = await fetchJson<{ count?: number }>(origin, '/tokenize', signal, { headers: auth, body: request });
      return answer.count ?? 0;
    },
    close: () => origin.close(),
  };
}

/**
 * vLLM's `/v1/completions` refuses `suffix` ("suffix is not currently supported", every version to
 * date): the client hears it as the same 400 a translated fill-in-the-middle gets, with
 * `param: suffix` and what to do instead, and vLLM's own words.
 */
export function explainSuffix(err: unknown): unknown {
  if (!(err instanceof GatewayError) || err.code !== 'invalid_request' || !/\bsuffix\b/i.test(err.message)) return err;
  // `unsupported`: an alias may go on to a backend that has fill-in-the-middle (Ollama).
  return new GatewayError('unsupported', `${completionNotSupported('vllm', 'suffix').message} (${err.message})`, { param: 'suffix', cause: err });
}
