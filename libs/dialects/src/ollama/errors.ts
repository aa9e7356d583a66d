import { GatewayError } from '@homelab/bus';
import type { DialectError } from '../types.ts';

/*
 * Ollama's errors: `{"error":"<text>"}` with the HTTP status, `Content-Type: application/json;
 * charset=utf-8` (the `ollama` npm client reads `error` only from a JSON content type, and prints
 * `[object Object]` for any other shape); inside a 200 stream, one NDJSON line `{"error":"<text>"}`
 * that ends the stream. The texts below are Ollama's own (server/routes.go, v0.12), so a client that
 * matches on them behaves as it does against Ollama.
 */

/** The content type of Ollama's JSON answers and errors (gin's `c.JSON`). */
export const OLLAMA_JSON_CONTENT_TYPE = 'application/json; charset=utf-8';

/** A gateway error in Ollama's shape and with its status. */
export function ollamaError(error: GatewayError): DialectError {
  return { status: error.status, body: JSON.stringify({ error: error.message }) };
}

/** The NDJSON line that reports an error inside a stream already under way. */
export function ollamaStreamErrorLine(error: GatewayError): string {
  return JSON.stringify({ error: error.message }) + '\n';
}

/** Go's `%q` of a string, as Ollama formats names into messages (JSON's quoting agrees for printable text). */
function goQuote(text: string): string {
  return JSON.stringify(text);
}

/** 404 of `/api/chat`, `/api/generate`, `/api/embed` and `/api/show` for a model Ollama does not have. */
export function ollamaModelNotFound(model: string): GatewayError {
  return new GatewayError('model_not_found', `model '${model}' not found`, { param: 'model' });
}

/** 404 of `/api/embeddings` (and of the scheduler) for a model Ollama does not have. */
export function ollamaModelNotPulled(model: string): GatewayError {
  return new GatewayError('model_not_found', `model ${goQuote(model)} not found, try pulling it first`, { param: 'model' });
}

/** 400 for a request without a model name. */
export function ollamaModelRequired(): GatewayError {
  return new GatewayError('invalid_request', 'model is required', { param: 'model' });
}

/** 400 for an empty body. */
export function ollamaMissingBody(): GatewayError {
  return new GatewayError('invalid_request', 'missing request body');
}

/** 400 of `/api/embed` for an `input` that is neither a string nor a list of strings. */
export function ollamaInvalidInputType(): GatewayError {
  return new GatewayError('invalid_request', 'invalid input type', { param: 'input' });
}

/** 400 of `/api/generate` for `raw` together with a template, a system prompt or a context. */
export function ollamaRawModeConflict(): GatewayError {
  return new GatewayError('invalid_request', 'raw mode does not support template, system, or context', { param: 'raw' });
}

/** A `format` that is neither `"json"` nor a schema object (Ollama reports it with the raw JSON, quoted). */
export function ollamaInvalidFormat(format: unknown): GatewayError {
  return new GatewayError('invalid_request', `invalid format: ${goQuote(JSON.stringify(format))}; expected "json" or a valid JSON Schema object`, { param: 'format' });
}

/** An error line (or error body) an Ollama backend sent, as the gateway's error. */
export function ollamaBackendError(message: string): GatewayError {
  return new GatewayError('backend_error', `ollama: ${message}`);
}

/** The model-management endpoints: the gateway serves models, it does not store them. */
export const OLLAMA_MANAGEMENT_PATHS = ['/api/pull', '/api/push', '/api/create', '/api/copy', '/api/delete', '/api/blobs'] as const;

/**
 * 403 for `/api/pull`, `/api/push`, `/api/create`, `/api/copy`, `/api/delete` and `/api/blobs/…`:
 * the gateway fronts every model of the lab, so storing or removing one is done on the Ollama node.
 */
export function ollamaManagementForbidden(path: string): DialectError {
  const operation = path.replace(/^\/api\//, '').split('/')[0] || path;
  const message = `model management (${operation}) is not available through the gateway: manage models on the Ollama node itself (ollama pull, push, create, cp, rm there)`;
  return ollamaError(new GatewayError('forbidden', message));
}
