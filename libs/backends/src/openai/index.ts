export { serveOpenAIImageJobs } from './images.ts';
import OpenAI, { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';
import type { DialectName } from '@homelab/dialects';
import { errorFromSdk, responseBody } from '../http/sdk-errors.ts';
import { pathFor } from '../http/json-backend.ts';
import { sdkFetch } from '../http/origin.ts';
import type { Backend, BackendCall } from '../types.ts';

export interface OpenAIBackendOptions {
  /** Including `/v1`, as the SDK reads `OPENAI_BASE_URL` (e.g. `https://api.openai.com/v1`). */
  baseURL: string;
  apiKey: string;
  /** The cloud models the lab offers; `listModels()` returns these without asking OpenAI. */
  models: string[];
  connectTimeoutMs: number;
  /** Longest silence between two pieces of a streamed answer. */
  idleTimeoutMs: number;
}

/** Paths under the base URL (which ends in `/v1`). */
const PATHS: Partial<Record<DialectName, string>> = {
  'openai.chat': '/chat/completions',
  'openai.completions': '/completions',
  'openai.embeddings': '/embeddings',
  'openai.responses': '/responses',
};

const SDK_ERRORS = { APIError, APIConnectionError, APIConnectionTimeoutError, APIUserAbortError };

/** Fields other APIs have that OpenAI's chat and completions answer with "Unrecognized request argument supplied". */
const OPENAI_REFUSES = ['top_k', 'min_p', 'repetition_penalty'] as const;

/**
 * OpenAI's API through the official SDK: it owns the authentication, the base URL and the request;
 * the body goes as the client's bytes (the SDK sends a byte body verbatim) and the answer comes back
 * raw, so requests in OpenAI's own dialects pass through unchanged, Responses included.
 */
export function createOpenAIBackend(options: OpenAIBackendOptions): Backend {
  const client = new OpenAI({
    baseURL: options.baseURL,
    apiKey: options.apiKey,
    // Retries are the router's job: it may pick another backend instead.
    maxRetries: 0,
    // The gateway reports errors itself; the SDK would log to the console per failed request.
    logLevel: 'off',
    // OPENAI_ORG_ID / OPENAI_PROJECT_ID from the environment must not reach other backends.
    organization: null,
    project: null,
    fetch: sdkFetch({ connectTimeoutMs: options.connectTimeoutMs, bodyTimeoutMs: options.idleTimeoutMs }),
  });
  return {
    provider: 'openai',
    dialects: new Set(Object.keys(PATHS) as DialectName[]),
    forms: { chat: 'openai.chat', completion: 'openai.completions', embeddings: 'openai.embeddings' },
    // Sampling fields of vLLM and Ollama that Anthropic's and Ollama's clients may send; OpenAI refuses them.
    unsupportedFields: OPENAI_REFUSES,
    async send(call: BackendCall) {
      const path = pathFor('openai', PATHS, call.dialect);
      try {
        const response = await client.post(path, {
          body: call.body, signal: call.signal, timeout: call.headersTimeoutMs, stream: call.stream,
          headers: { 'content-type': 'application/json', ...call.headers },
        }).asResponse();
        return { status: response.status, contentType: response.headers.get('content-type') ?? '', body: responseBody(response, 'openai', call) };
      } catch (err) {
        throw errorFromSdk(err, 'openai', SDK_ERRORS, call);
      }
    },
    listModels: async () => options.models.map((id) => ({ id })),
    close: async () => {},
  };
}
