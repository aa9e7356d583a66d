import { GatewayError } from '@homelab/bus';
import { completionNotSupported, dialectOf, unsupportedHere, type ChatChunk, type Completion, type Dialect, type InternalAnswers, type InternalForm, type InternalRequest, type TranslationContext } from '@homelab/dialects';
import { readAll, type BackendTimeouts } from './http/origin.ts';
import type { Backend } from './types.ts';

/** One internal-form request to a backend. */
export interface InternalCall extends BackendTimeouts {
  context: TranslationContext;
  signal: AbortSignal;
  headers?: Record<string, string>;
  requestId?: string;
}

/** What a backend's decoder learned along the way (Ollama's load time). */
export interface InternalStreamStats {
  loadMs?: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The dialect that carries an internal form to this backend; a clear 400 where it has none. */
export function backendDialectFor(backend: Backend, form: InternalForm): Dialect {
  const name = backend.forms[form];
  if (!name) {
    const what = form === 'completion' ? 'text completions (legacy completions, fill-in-the-middle)' : form;
    throw unsupportedHere(`${backend.provider} cannot serve ${what}: use a model of another backend`, 'model');
  }
  return dialectOf(name);
}

/**
 * A text completion with a `suffix` (fill-in-the-middle, from Ollama's `/api/generate`) to a backend
 * without it (Anthropic has no text completions, vLLM's refuse `suffix`): the clear 400 naming the
 * backend, before anything is sent. Fill-in-the-middle is not emulated through chat.
 */
export function refuseFillInTheMiddle(backend: Backend, internal: InternalRequest): void {
  if (internal.form !== 'completion' || !internal.request.suffix) return;
  if (!backend.forms.completion || backend.fillInTheMiddle === false) throw completionNotSupported(backend.provider, 'suffix');
}

function requestBody(dialect: Dialect, internal: InternalRequest, call: InternalCall, backend: Backend, stream: boolean): Uint8Array {
  if (!dialect.requestFromInternal) throw new GatewayError('internal_error', `dialect ${dialect.name} cannot carry internal requests`);
  const body = dialect.requestFromInternal(internal, { model: call.context.model, stream, ...(backend.defaults && { defaults: { ...backend.defaults } }) });
  for (const field of backend.unsupportedFields ?? []) delete body[field];
  return encoder.encode(JSON.stringify(body));
}

/** An internal request served whole by a backend, through the dialect it speaks for that form. */
export async function completeInternal<F extends InternalForm>(backend: Backend, internal: InternalRequest & { form: F }, call: InternalCall, stats: InternalStreamStats = {}): Promise<InternalAnswers[F]> {
  const dialect = backendDialectFor(backend, internal.form);
  const answer = await backend.send({ ...call, dialect: dialect.name, stream: false, body: requestBody(dialect, internal, call, backend, false) });
  const bytes = await readAll(answer.body);
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(bytes));
  } catch (err) {
    throw new GatewayError('backend_error', `${backend.provider} sent a malformed answer`, { cause: err });
  }
  if (!dialect.answerToInternal) throw new GatewayError('internal_error', `dialect ${dialect.name} cannot read answers`);
  const loadMs = dialect.loadMsOf?.(parsed);
  if (loadMs !== undefined) stats.loadMs = loadMs;
  return dialect.answerToInternal(parsed, call.context) as InternalAnswers[F];
}

/**
 * An internal request streamed by a backend: yields the internal chunks of each piece the backend
 * sent (a piece may hold several), and fails when the stream ends before its terminal event.
 */
export async function* streamInternal(backend: Backend, internal: InternalRequest, call: InternalCall, stats: InternalStreamStats = {}): AsyncGenerator<(ChatChunk | Completion)[]> {
  const dialect = backendDialectFor(backend, internal.form);
  if (!dialect.createDecoder) throw new GatewayError('internal_error', `dialect ${dialect.name} cannot read streams`);
  const answer = await backend.send({ ...call, dialect: dialect.name, stream: true, body: requestBody(dialect, internal, call, backend, true) });
  const stream = dialect.createDecoder(call.context);
  for await (const piece of answer.body) {
    const chunks = stream.push(piece);
    if (chunks.length > 0) yield chunks;
    // After the content that came with it: an error event ends the stream (the worker decides how).
    if (stream.error) throw stream.error;
  }
  if (stream.loadMs !== undefined) stats.loadMs = stream.loadMs;
  if (!stream.complete) throw new GatewayError('backend_error', `${backend.provider} ended the stream before the answer was complete`);
}
