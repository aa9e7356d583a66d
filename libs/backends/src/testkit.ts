import { GatewayError, nowMs, type InferenceCompleted, type MsgHeaders } from '@homelab/bus';
import { dialectOf, type ChatChunk, type ChatRequest, type ChunkDeltaWithReasoning, type Completion, type DialectName, type InternalRequest } from '@homelab/dialects';
import { createLogger } from '@homelab/logging';
import { readAll, type HttpAnswer } from './http/origin.ts';
import type { InternalCall } from './internal.ts';
import type { Backend, BackendCall } from './types.ts';
import type { WorkerEnvelope } from './worker/envelope.ts';
import { WorkerRequest } from './worker/request.ts';

/*
 * Helpers for the backends' tests (not part of the library's entry points). Kept free of test
 * runners and simulators so that it compiles with the library itself.
 */

/** A question of 7 words: the simulators count one prompt token per word. */
export const USER: ChatRequest['messages'] = [{ role: 'user', content: 'What is the weather in Paris today?' }];

/** A function tool the simulators "decide" to call after a user turn. */
export const WEATHER_TOOL = {
  type: 'function' as const,
  function: {
    name: 'get_weather',
    parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } }, required: ['city', 'unit'] },
  },
};

/** Generous timeouts: a test that needs a short one says so. */
export const TEST_TIMEOUTS = { headersTimeoutMs: 10_000, bodyTimeoutMs: 10_000 } as const;

const encoder = new TextEncoder();

/** A JSON body as the bytes a client would send. */
export function jsonBytes(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

/** A pass-through call: `body` as given (bytes, or JSON to encode). */
export function backendCall(dialect: BackendCall['dialect'], body: Uint8Array | Record<string, unknown>, options: Partial<Omit<BackendCall, 'dialect' | 'body'>> = {}): BackendCall {
  const bytes = body instanceof Uint8Array ? body : jsonBytes(body);
  const stream = options.stream ?? (!(body instanceof Uint8Array) && body['stream'] === true);
  return { signal: new AbortController().signal, ...TEST_TIMEOUTS, ...options, dialect, body: bytes, stream };
}

/** An internal call for `model`, with the test timeouts unless overridden. */
export function internalCall(model: string, options: Partial<Omit<InternalCall, 'context'>> & { includeUsage?: boolean } = {}): InternalCall {
  const { includeUsage = false, ...rest } = options;
  return {
    context: { requestId: 'req-test', model, requestedModel: model, created: Math.floor(Date.now() / 1000), includeUsage },
    signal: new AbortController().signal, ...TEST_TIMEOUTS, ...rest,
  };
}

/** An internal chat request; `extra` may carry fields OpenAI's types do not know (`top_k`, `think`). */
export function chat(request: Partial<ChatRequest> & Record<string, unknown> = {}): InternalRequest & { form: 'chat' } {
  return { form: 'chat', request: { model: 'client-model', messages: [{ role: 'user', content: 'hello there' }], ...request } as ChatRequest };
}

/** The chunks of `streamInternal`, flattened, in order. */
export async function collectChunks(batches: AsyncIterable<(ChatChunk | Completion)[]>, into: ChatChunk[] = []): Promise<ChatChunk[]> {
  for await (const batch of batches) into.push(...(batch as ChatChunk[]));
  return into;
}

/** The first choice's delta of each chunk (undefined for the usage chunk). */
export function deltasOf(chunks: ChatChunk[]): (ChunkDeltaWithReasoning | undefined)[] {
  return chunks.map((c) => c.choices[0]?.delta as ChunkDeltaWithReasoning | undefined);
}

export function contentOf(chunks: ChatChunk[]): string {
  return deltasOf(chunks).map((d) => d?.content ?? '').join('');
}

export function reasoningOf(chunks: ChatChunk[]): string {
  return deltasOf(chunks).map((d) => d?.reasoning_content ?? '').join('');
}

/** The whole body of an answer as text. */
export async function answerText(answer: HttpAnswer): Promise<string> {
  return (await readAll(answer.body)).toString('utf8');
}

/**
 * The GatewayError that `work` fails with; throws when it succeeds or fails with anything else.
 * `work` may be a promise or a function (which may throw synchronously).
 */
export async function gatewayError(work: Promise<unknown> | (() => unknown)): Promise<GatewayError> {
  let outcome: unknown;
  try {
    await (typeof work === 'function' ? work() : work);
    outcome = undefined;
  } catch (err) {
    if (err instanceof GatewayError) return err;
    outcome = err;
  }
  throw new Error(outcome === undefined ? 'expected a GatewayError, but it succeeded' : `expected a GatewayError, got ${String(outcome)}`, { cause: outcome });
}

/** Everything an error exposes, as text: to check that a secret appears nowhere (message, fields, cause chain). */
export function everythingOf(err: unknown): string {
  const parts: string[] = [];
  const seen = new Set<unknown>();
  for (let e: unknown = err; e !== undefined && e !== null && !seen.has(e); e = (e as { cause?: unknown }).cause) {
    seen.add(e);
    if (e instanceof Error) parts.push(e.message, e.stack ?? '');
    try {
      parts.push(JSON.stringify(e));
    } catch {
      parts.push(String(e));
    }
    if (e instanceof GatewayError) parts.push(JSON.stringify(e.toOpenAI()));
  }
  return parts.join('\n');
}

// --- one WorkerRequest with recorders instead of the bus ---

/** A router's envelope for a request in `dialect`, as `readEnvelope` would build it. */
export function envelopeFor(dialect: DialectName, fields: Partial<Omit<WorkerEnvelope, 'dialect'>> = {}): WorkerEnvelope {
  return {
    requestId: 'req-test-1', attempt: 1, replyTo: '_INBOX.requester.1', model: 'backend-model', requestedModel: 'lab/model',
    dialect: dialectOf(dialect), stream: false, includeUsage: false, routeReason: 'only-candidate', receivedAt: nowMs(),
    traceparent: undefined, keyName: 'family', forwardedHeaders: {}, ...fields,
  };
}

/** One message to the requester. */
export interface Published {
  subject: string;
  body: string;
  headers: MsgHeaders | undefined;
}

/** Everything one WorkerRequest told the world, in order. */
export interface WorkerRecord {
  messages: Published[];
  outcomes: ('started' | 'done')[];
  failures: GatewayError[];
  events: InferenceCompleted[];
  /** pino's JSON lines. */
  logs: Record<string, unknown>[];
  touches: number;
  /** `publish`, `started`, `done`, `failure`, `event` in the order they happened. */
  order: string[];
}

const decoder = new TextDecoder();

/** Runs one request through `WorkerRequest.run()` against `backend`; resolves when it is over. */
export async function runWorkerRequest(
  backend: Backend, envelope: WorkerEnvelope, body: Uint8Array | Record<string, unknown>,
  options: { signal?: AbortSignal; timeouts?: { idleTimeoutMs: number; totalTimeoutMs: number } } = {},
): Promise<WorkerRecord> {
  const record: WorkerRecord = { messages: [], outcomes: [], failures: [], events: [], logs: [], touches: 0, order: [] };
  const log = createLogger({ service: 'worker-test', level: 'debug', destination: { write: (line: string) => { record.logs.push(JSON.parse(line) as Record<string, unknown>); } } });
  await new WorkerRequest(envelope, body instanceof Uint8Array ? body : jsonBytes(body), {
    backend, log,
    signal: options.signal ?? new AbortController().signal,
    timeouts: options.timeouts ?? { idleTimeoutMs: TEST_TIMEOUTS.bodyTimeoutMs, totalTimeoutMs: TEST_TIMEOUTS.headersTimeoutMs },
    publish: (subject, bytes, headers) => {
      record.messages.push({ subject, body: typeof bytes === 'string' ? bytes : decoder.decode(bytes), headers });
      record.order.push('publish');
    },
    outcome: (word) => { record.outcomes.push(word); record.order.push(word); },
    reportFailure: (error) => { record.failures.push(error); record.order.push('failure'); },
    emit: (event) => { record.events.push(event); record.order.push('event'); },
    touch: () => { record.touches++; },
  }).run();
  return record;
}

/** The requester's view of a streamed answer: every body, joined. */
export function streamedText(record: WorkerRecord): string {
  return record.messages.map((m) => m.body).join('');
}
