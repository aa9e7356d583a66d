import { describe, expect, it } from 'vitest';
import { GatewayError, H, InferenceCompletedSchema, validator, type InferenceCompleted } from '@homelab/bus';
import { dialectOf, openAIChat, sseEvent, type ChatCompletion, type Dialect, type DialectName, type InternalForm } from '@homelab/dialects';
import { errorFromStatus } from '../http/status.ts';
import { backendDialectFor } from '../internal.ts';
import { envelopeFor, runWorkerRequest, streamedText, type WorkerRecord } from '../testkit.ts';
import type { Backend, BackendCall, ProviderName } from '../types.ts';

// --- a fake backend: scripted answers, every call recorded ---

/** One step of a scripted answer body. */
type Step =
  | string
  | { fail: Error }
  /** Runs `fn` (e.g. aborts the request), then goes on. */
  | { run: () => void }
  /** Waits until the request's signal is aborted, then fails as an aborted read does. */
  | { waitForAbort: true };

interface FakeBackend extends Backend {
  calls: BackendCall[];
}

function fakeBackend(options: {
  provider?: ProviderName;
  dialects: DialectName[];
  forms: Partial<Record<InternalForm, DialectName>>;
  defaults?: Record<string, unknown>;
  /** The answer: a body (its pieces, as the transport hands them over) or the error `send` throws. */
  answer: { contentType: string; steps: Step[] } | GatewayError;
}): FakeBackend {
  const calls: BackendCall[] = [];
  return {
    provider: options.provider ?? 'vllm',
    dialects: new Set(options.dialects),
    forms: options.forms,
    ...(options.defaults && { defaults: options.defaults }),
    calls,
    async send(call) {
      calls.push(call);
      const answer = options.answer;
      if (answer instanceof GatewayError) throw answer;
      return { status: 200, contentType: answer.contentType, body: play(answer.steps, call.signal) };
    },
    listModels: async () => [],
    close: async () => {},
  };
}

async function* play(steps: Step[], signal: AbortSignal): AsyncGenerator<Uint8Array> {
  for (const step of steps) {
    if (typeof step === 'string') yield Buffer.from(step);
    else if ('fail' in step) throw step.fail;
    else if ('run' in step) step.run();
    else {
      if (!signal.aborted) await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
      // What undici throws on an aborted read: the worker must fail with the signal's reason instead.
      throw new DOMException('This operation was aborted', 'AbortError');
    }
  }
}

// --- OpenAI's stream, as vLLM writes it ---

const RESPONSE_MODEL = 'Qwen/Qwen2.5-7B-Instruct';
const chunk = (delta: Record<string, unknown>, finish: string | null = null): string =>
  sseEvent(JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: RESPONSE_MODEL, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] }));
const ROLE = chunk({ role: 'assistant', content: '' });
const HEL = chunk({ content: 'Hel' });
const LO = chunk({ content: 'lo' });
const FINISH = chunk({ content: '' }, 'stop');
const USAGE = sseEvent(JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: RESPONSE_MODEL, choices: [], usage: { prompt_tokens: 7, completion_tokens: 2, total_tokens: 9 } }));
const DONE = 'data: [DONE]\n\n';
const SSE = 'text/event-stream; charset=utf-8';

const WHOLE: ChatCompletion = {
  id: 'chatcmpl-2', object: 'chat.completion', created: 1, model: RESPONSE_MODEL,
  choices: [{ index: 0, message: { role: 'assistant', content: 'Hello', refusal: null }, logprobs: null, finish_reason: 'stop' }],
  usage: { prompt_tokens: 7, completion_tokens: 2, total_tokens: 9 },
};

const CLIENT_BODY = { model: 'lab/model', messages: [{ role: 'user', content: 'hello there' }] };
const STREAM_BODY = { ...CLIENT_BODY, stream: true };

const vllm = (steps: Step[]): FakeBackend =>
  fakeBackend({ dialects: ['openai.chat', 'openai.embeddings'], forms: { chat: 'openai.chat', embeddings: 'openai.embeddings' }, answer: { contentType: SSE, steps } });

const checkEvent = validator(InferenceCompletedSchema);

function headerOf(record: WorkerRecord, index: number, name: string): string | undefined {
  return record.messages[index]?.headers?.get(name) || undefined;
}

function onlyEvent(record: WorkerRecord): InferenceCompleted {
  expect(record.events).toHaveLength(1);
  return checkEvent.parse(record.events[0]);
}

/** The error frame a requester gets after content: the service error headers, `Homelab-Stream: error`, the dialect's in-stream error. */
function expectErrorFrame(record: WorkerRecord, error: { code: string; status: number; message: string }, dialect: Dialect = openAIChat as Dialect): void {
  const last = record.messages.at(-1)!;
  expect(last.headers?.get(H.stream)).toBe('error');
  expect(last.headers?.get(H.errorCode)).toBe(error.code);
  expect(last.headers?.get(H.serviceErrorCode)).toBe(String(error.status));
  expect(last.headers?.get(H.serviceError)).toBe(error.message);
  expect(last.body).toBe(dialect.streamError!(new GatewayError(error.code as GatewayError['code'], error.message)));
}

describe('WorkerRequest: pass-through, whole answer', () => {
  it('one message with the answer headers, done, and an ok event with the tokens read from the body', async () => {
    const text = JSON.stringify(WHOLE);
    const backend = fakeBackend({ dialects: ['openai.chat'], forms: { chat: 'openai.chat' }, answer: { contentType: 'application/json', steps: [text.slice(0, 20), text.slice(20)] } });
    const envelope = envelopeFor('openai.chat', { forwardedHeaders: { 'x-test': '1' } });
    const record = await runWorkerRequest(backend, envelope, CLIENT_BODY, { timeouts: { idleTimeoutMs: 1111, totalTimeoutMs: 2222 } });

    expect(record.failures).toEqual([]);
    expect(record.order).toEqual(['publish', 'done', 'event']);
    expect(record.messages).toHaveLength(1);
    expect(record.messages[0]).toMatchObject({ subject: envelope.replyTo, body: text });
    expect(headerOf(record, 0, H.stream)).toBeUndefined();
    expect(headerOf(record, 0, H.contentType)).toBe('application/json');
    expect(headerOf(record, 0, H.dialect)).toBe('openai.chat');
    expect(headerOf(record, 0, H.backend)).toBe('vllm');
    expect(headerOf(record, 0, H.model)).toBe('backend-model');
    expect(headerOf(record, 0, H.attempt)).toBe('1');
    expect(headerOf(record, 0, H.routeReason)).toBe('only-candidate');
    expect(headerOf(record, 0, H.requestId)).toBe(envelope.requestId);
    expect(Number(headerOf(record, 0, H.backendMs))).toBeGreaterThanOrEqual(0);
    expect(record.touches).toBe(1);

    expect(onlyEvent(record)).toMatchObject({
      requestId: envelope.requestId, operation: 'chat', dialect: 'openai.chat', stream: false, backend: 'vllm', model: 'backend-model', requestedModel: 'lab/model',
      status: 'ok', httpStatus: 200, attempts: 1, routeReason: 'only-candidate', apiKey: 'family',
      inputTokens: 7, outputTokens: 2, finishReason: 'stop', responseModel: RESPONSE_MODEL,
    });

    // The backend got the client's bytes with only the model set, and the worker's timeouts and signal.
    const call = backend.calls[0]!;
    expect(call).toMatchObject({ dialect: 'openai.chat', stream: false, headers: { 'x-test': '1' }, requestId: envelope.requestId, headersTimeoutMs: 2222, bodyTimeoutMs: 1111 });
    expect(JSON.parse(Buffer.from(call.body).toString())).toEqual({ ...CLIENT_BODY, model: 'backend-model' });
  });
});

describe('WorkerRequest: pass-through stream', () => {
  it('holds events back until content, then streams: one message with headers, later ones bare, then end', async () => {
    const backend = vllm([ROLE, HEL, LO + FINISH, USAGE + DONE]);
    const envelope = envelopeFor('openai.chat', { stream: true });
    const record = await runWorkerRequest(backend, envelope, STREAM_BODY);

    expect(record.failures).toEqual([]);
    expect(record.messages.map((m) => m.body)).toEqual([ROLE + HEL, LO + FINISH, DONE, '']);
    expect(headerOf(record, 0, H.stream)).toBe('data');
    expect(headerOf(record, 0, H.contentType)).toBe('text/event-stream');
    expect(headerOf(record, 0, H.backend)).toBe('vllm');
    expect(headerOf(record, 0, H.model)).toBe('backend-model');
    expect(headerOf(record, 0, H.requestId)).toBe(envelope.requestId);
    expect(Number(headerOf(record, 0, H.backendMs))).toBeGreaterThanOrEqual(0);
    // Later data messages carry no headers at all.
    expect(record.messages[1]!.headers).toBeUndefined();
    expect(record.messages[2]!.headers).toBeUndefined();
    expect(headerOf(record, 3, H.stream)).toBe('end');
    expect(Number(headerOf(record, 3, H.backendMs))).toBeGreaterThanOrEqual(0);
    // The usage chunk the gateway asked for itself is not the client's.
    expect(streamedText(record)).toBe(ROLE + HEL + LO + FINISH + DONE);

    expect(record.order).toEqual(['publish', 'started', 'publish', 'publish', 'publish', 'done', 'event']);
    expect(record.touches).toBe(4);
    const event = onlyEvent(record);
    expect(event).toMatchObject({ status: 'ok', httpStatus: 200, stream: true, inputTokens: 7, outputTokens: 2, finishReason: 'stop', responseModel: RESPONSE_MODEL });
    expect(event.ttftMs).toBeGreaterThanOrEqual(0);
    expect(event.backendMs).toBeGreaterThanOrEqual(event.ttftMs!);

    // The backend was asked for usage, whatever the client asked.
    expect(JSON.parse(Buffer.from(backend.calls[0]!.body).toString())).toEqual({ ...STREAM_BODY, model: 'backend-model', stream_options: { include_usage: true } });
    expect(backend.calls[0]!.stream).toBe(true);
  });

  it('keeps the usage chunk when the client asked for it', async () => {
    const record = await runWorkerRequest(vllm([ROLE + HEL, FINISH, USAGE, DONE]), envelopeFor('openai.chat', { stream: true, includeUsage: true }), { ...STREAM_BODY, stream_options: { include_usage: true } });
    expect(streamedText(record)).toBe(ROLE + HEL + FINISH + USAGE + DONE);
    expect(onlyEvent(record)).toMatchObject({ status: 'ok', inputTokens: 7, outputTokens: 2 });
  });

  it('events split across reads are forwarded whole', async () => {
    const all = ROLE + HEL + LO + FINISH + USAGE + DONE;
    const cuts = [0, 10, ROLE.length + 5, ROLE.length + HEL.length + 30, all.length - 3, all.length];
    const steps = cuts.slice(1).map((end, i) => all.slice(cuts[i], end));
    expect(steps.join('')).toBe(all);
    const record = await runWorkerRequest(vllm(steps), envelopeFor('openai.chat', { stream: true }), STREAM_BODY);
    expect(streamedText(record)).toBe(ROLE + HEL + LO + FINISH + DONE);
    expect(record.messages[0]!.body.startsWith(ROLE + HEL)).toBe(true);
    expect(onlyEvent(record).status).toBe('ok');
  });

  it('a finish reason commits the answer as content does', async () => {
    const record = await runWorkerRequest(vllm([ROLE, FINISH, DONE]), envelopeFor('openai.chat', { stream: true }), STREAM_BODY);
    expect(record.failures).toEqual([]);
    expect(record.messages.map((m) => m.body)).toEqual([ROLE + FINISH, DONE, '']);
    expect(record.outcomes).toEqual(['started', 'done']);
  });

  it('a complete answer without any content is committed at its end, held events and all', async () => {
    const record = await runWorkerRequest(vllm([ROLE, DONE]), envelopeFor('openai.chat', { stream: true }), STREAM_BODY);
    expect(record.failures).toEqual([]);
    expect(record.messages.map((m) => m.body)).toEqual([ROLE + DONE, '']);
    expect(headerOf(record, 0, H.stream)).toBe('data');
    expect(headerOf(record, 1, H.stream)).toBe('end');
    expect(record.order).toEqual(['publish', 'started', 'publish', 'done', 'event']);
    expect(onlyEvent(record)).toMatchObject({ status: 'ok' });
  });

  it('an error before any content → reportFailure, nothing to the requester', async () => {
    const error = new GatewayError('backend_unavailable', 'vllm is unreachable: ECONNREFUSED');
    const backend = fakeBackend({ dialects: ['openai.chat'], forms: { chat: 'openai.chat' }, answer: error });
    const record = await runWorkerRequest(backend, envelopeFor('openai.chat', { stream: true }), STREAM_BODY);
    expect(record.failures).toEqual([error]);
    expect(record.messages).toEqual([]);
    expect(record.outcomes).toEqual([]);
    expect(record.events).toEqual([]);
  });

  it('a cut while only events before content were read → reportFailure; the held bytes never go out', async () => {
    const cut = new GatewayError('backend_error', 'vllm closed the connection mid-answer');
    const record = await runWorkerRequest(vllm([ROLE, { fail: cut }]), envelopeFor('openai.chat', { stream: true }), STREAM_BODY);
    expect(record.failures).toEqual([cut]);
    expect(record.messages).toEqual([]);
    expect(record.outcomes).toEqual([]);
  });

  it("vLLM's error event before content (data: {\"error\":…}) → reportFailure", async () => {
    const errorEvent = sseEvent(JSON.stringify({ error: { message: 'CUDA out of memory', type: 'InternalServerError', param: null, code: 500 } }));
    const record = await runWorkerRequest(vllm([ROLE, errorEvent, DONE]), envelopeFor('openai.chat', { stream: true }), STREAM_BODY);
    expect(record.failures).toHaveLength(1);
    expect(record.failures[0]).toMatchObject({ code: 'backend_error', message: expect.stringMatching(/failed mid-stream: CUDA out of memory$/) });
    expect(record.messages).toEqual([]);
  });

  it('a stream that ends before content and without [DONE] → reportFailure', async () => {
    const record = await runWorkerRequest(vllm([ROLE]), envelopeFor('openai.chat', { stream: true }), STREAM_BODY);
    expect(record.failures).toEqual([expect.objectContaining({ code: 'backend_error', message: 'vllm ended the stream before the answer was complete' })]);
    expect(record.messages).toEqual([]);
  });

  it("a cut after content → the dialect's in-stream error, done, and an error event marked truncated", async () => {
    const cut = new GatewayError('backend_error', 'vllm closed the connection mid-answer');
    const record = await runWorkerRequest(vllm([ROLE, HEL, { fail: cut }]), envelopeFor('openai.chat', { stream: true }), STREAM_BODY);
    expect(record.failures).toEqual([]);
    expect(record.messages.map((m) => m.body).slice(0, -1)).toEqual([ROLE + HEL]);
    expectErrorFrame(record, { code: 'backend_error', status: 502, message: 'vllm closed the connection mid-answer' });
    expect(record.order).toEqual(['publish', 'started', 'publish', 'done', 'event']);
    const event = onlyEvent(record);
    expect(event).toMatchObject({ status: 'error', httpStatus: 502, errorType: 'backend_error', truncated: true });
    expect(event.ttftMs).toBeGreaterThanOrEqual(0);
    expect(record.logs).toContainEqual(expect.objectContaining({ level: 'warn', requestId: 'req-test-1', err: 'vllm closed the connection mid-answer', msg: 'stream cut after content was sent' }));
  });

  it("vLLM's error event after content → not forwarded: the stream ends with the error in the client's dialect", async () => {
    const errorEvent = sseEvent(JSON.stringify({ error: { message: 'CUDA out of memory', type: 'InternalServerError', param: null, code: 500 } }));
    const record = await runWorkerRequest(vllm([ROLE + HEL, LO + errorEvent + DONE]), envelopeFor('openai.chat', { stream: true }), STREAM_BODY);
    expect(record.failures).toEqual([]);
    // vLLM's own error event does not reach the client.
    expect(streamedText(record)).not.toContain('InternalServerError');
    expect(record.messages.slice(0, -1).map((m) => m.body).join('')).toBe(ROLE + HEL + LO);
    const last = record.messages.at(-1)!;
    expect(last.headers?.get(H.stream)).toBe('error');
    expect(JSON.parse(last.body.slice('data: '.length))).toMatchObject({ error: { code: 'backend_error', message: expect.stringMatching(/failed mid-stream: CUDA out of memory$/) } });
    expect(onlyEvent(record)).toMatchObject({ status: 'error', errorType: 'backend_error', truncated: true });
  });

  it('a stream that ends after content without [DONE] → backend_error after content', async () => {
    const record = await runWorkerRequest(vllm([ROLE, HEL, LO]), envelopeFor('openai.chat', { stream: true }), STREAM_BODY);
    expect(record.failures).toEqual([]);
    expectErrorFrame(record, { code: 'backend_error', status: 502, message: 'vllm ended the stream before the answer was complete' });
    expect(onlyEvent(record)).toMatchObject({ status: 'error', errorType: 'backend_error', truncated: true });
  });

  it('a cancel after content → no error frame, done, an event with status cancelled', async () => {
    const controller = new AbortController();
    const cancel = { run: () => controller.abort(new GatewayError('cancelled', 'request cancelled')) };
    const record = await runWorkerRequest(vllm([ROLE, HEL, cancel, { waitForAbort: true }]), envelopeFor('openai.chat', { stream: true }), STREAM_BODY, { signal: controller.signal });
    expect(record.failures).toEqual([]);
    expect(record.messages.map((m) => m.body)).toEqual([ROLE + HEL]);
    expect(record.outcomes).toEqual(['started', 'done']);
    expect(onlyEvent(record)).toMatchObject({ status: 'cancelled', httpStatus: 499, errorType: 'cancelled', truncated: true });
    expect(record.logs.filter((l) => l['level'] === 'warn' || l['level'] === 'error')).toEqual([]);
  });

  it('a cancel before content → reportFailure with the cancel, nothing to the requester', async () => {
    const controller = new AbortController();
    const cancel = { run: () => controller.abort(new GatewayError('cancelled', 'request cancelled')) };
    const record = await runWorkerRequest(vllm([ROLE, cancel, { waitForAbort: true }]), envelopeFor('openai.chat', { stream: true }), STREAM_BODY, { signal: controller.signal });
    expect(record.failures).toEqual([expect.objectContaining({ code: 'cancelled' })]);
    expect(record.messages).toEqual([]);
    expect(record.events).toEqual([]);
  });

  it("the worker's total timeout after content → the timeout in the client's dialect, whatever the read threw", async () => {
    const controller = new AbortController();
    const timeout = { run: () => controller.abort(new GatewayError('timeout', 'vllm took longer than 100 ms in total')) };
    const record = await runWorkerRequest(vllm([ROLE, HEL, timeout, { waitForAbort: true }]), envelopeFor('openai.chat', { stream: true }), STREAM_BODY, { signal: controller.signal });
    expectErrorFrame(record, { code: 'timeout', status: 504, message: 'vllm took longer than 100 ms in total' });
    expect(onlyEvent(record)).toMatchObject({ status: 'error', httpStatus: 504, errorType: 'timeout', truncated: true });
  });
});

// --- translation: the backend speaks another dialect than the client ---

const ollamaLine = (fields: Record<string, unknown>): string => `${JSON.stringify({ model: 'qwen3:8b', created_at: '2025-10-01T12:00:00Z', ...fields })}\n`;
const OLLAMA_FINAL = ollamaLine({ message: { role: 'assistant', content: '' }, done: true, done_reason: 'stop', load_duration: 2_500_000_000, prompt_eval_count: 7, eval_count: 2 });

const ollama = (steps: Step[], contentType = 'application/x-ndjson'): FakeBackend => fakeBackend({
  provider: 'ollama', dialects: ['ollama.chat', 'ollama.embed'], forms: { chat: 'ollama.chat', embeddings: 'ollama.embed' },
  defaults: { keep_alive: '5m' }, answer: { contentType, steps },
});

/** The OpenAI chunks in an SSE text, and whether it ended with [DONE]. */
function openAIEvents(text: string): { chunks: Record<string, unknown>[]; done: boolean } {
  const events = text.split('\n\n').filter(Boolean).map((e) => e.slice('data: '.length));
  const done = events.at(-1) === '[DONE]';
  return { chunks: (done ? events.slice(0, -1) : events).map((e) => JSON.parse(e) as Record<string, unknown>), done };
}

describe('WorkerRequest: translation through the internal form', () => {
  it('an OpenAI stream served by Ollama: the backend gets /api/chat JSON, the requester OpenAI SSE chunks', async () => {
    const steps = [ollamaLine({ message: { role: 'assistant', content: 'Hel' }, done: false }), ollamaLine({ message: { role: 'assistant', content: 'lo' }, done: false }) + OLLAMA_FINAL];
    const backend = ollama(steps);
    const record = await runWorkerRequest(backend, envelopeFor('openai.chat', { stream: true, model: 'qwen3:8b' }), STREAM_BODY);

    expect(record.failures).toEqual([]);
    const call = backend.calls[0]!;
    expect(call).toMatchObject({ dialect: 'ollama.chat', stream: true, requestId: 'req-test-1' });
    expect(JSON.parse(Buffer.from(call.body).toString())).toEqual({ model: 'qwen3:8b', messages: CLIENT_BODY.messages, stream: true, keep_alive: '5m' });

    expect(headerOf(record, 0, H.stream)).toBe('data');
    expect(headerOf(record, 0, H.contentType)).toBe('text/event-stream');
    expect(headerOf(record, 0, H.dialect)).toBe('openai.chat');
    expect(headerOf(record, 0, H.backend)).toBe('ollama');
    expect(headerOf(record, record.messages.length - 1, H.stream)).toBe('end');
    const { chunks, done } = openAIEvents(streamedText(record));
    expect(done).toBe(true);
    expect(chunks.every((c) => c['object'] === 'chat.completion.chunk' && c['model'] === 'qwen3:8b')).toBe(true);
    const deltas = chunks.map((c) => (c['choices'] as { delta: { content?: string }; finish_reason: string | null }[])[0]);
    expect(deltas.map((d) => d?.delta.content ?? '').join('')).toBe('Hello');
    expect(deltas.at(-1)?.finish_reason).toBe('stop');
    // No usage chunk: the client did not ask for one.
    expect(chunks.some((c) => 'usage' in c)).toBe(false);

    expect(record.outcomes).toEqual(['started', 'done']);
    const event = onlyEvent(record);
    expect(event).toMatchObject({ status: 'ok', backend: 'ollama', dialect: 'openai.chat', inputTokens: 7, outputTokens: 2, finishReason: 'stop', responseModel: 'qwen3:8b', loadMs: 2500 });
    expect(event.ttftMs).toBeGreaterThanOrEqual(0);
  });

  it('the usage chunk reaches a client that asked for it', async () => {
    const record = await runWorkerRequest(ollama([ollamaLine({ message: { role: 'assistant', content: 'Hi' }, done: false }) + OLLAMA_FINAL]),
      envelopeFor('openai.chat', { stream: true, includeUsage: true }), { ...STREAM_BODY, stream_options: { include_usage: true } });
    const { chunks } = openAIEvents(streamedText(record));
    expect(chunks.at(-1)).toMatchObject({ choices: [], usage: { prompt_tokens: 7, completion_tokens: 2, total_tokens: 9 } });
  });

  it('a whole answer: one message with the OpenAI completion', async () => {
    const whole = JSON.stringify({ model: 'qwen3:8b', message: { role: 'assistant', content: 'Hello' }, done: true, done_reason: 'stop', prompt_eval_count: 7, eval_count: 2 });
    const backend = ollama([whole], 'application/json; charset=utf-8');
    const record = await runWorkerRequest(backend, envelopeFor('openai.chat', { model: 'qwen3:8b' }), CLIENT_BODY);
    expect(record.failures).toEqual([]);
    expect(JSON.parse(Buffer.from(backend.calls[0]!.body).toString())).toMatchObject({ stream: false, model: 'qwen3:8b' });
    expect(record.messages).toHaveLength(1);
    expect(headerOf(record, 0, H.stream)).toBeUndefined();
    expect(headerOf(record, 0, H.contentType)).toBe('application/json');
    expect(JSON.parse(record.messages[0]!.body)).toMatchObject({ object: 'chat.completion', model: 'qwen3:8b', choices: [{ message: { content: 'Hello' }, finish_reason: 'stop' }], usage: { prompt_tokens: 7, completion_tokens: 2 } });
    expect(record.outcomes).toEqual(['done']);
    expect(onlyEvent(record)).toMatchObject({ status: 'ok', inputTokens: 7, outputTokens: 2, finishReason: 'stop', responseModel: 'qwen3:8b' });
  });

  it("Ollama's in-stream error line after content → the OpenAI in-stream error, an error event", async () => {
    const steps = [ollamaLine({ message: { role: 'assistant', content: 'Hel' }, done: false }), `${JSON.stringify({ error: 'llama runner process has terminated: exit status 2' })}\n`];
    const record = await runWorkerRequest(ollama(steps), envelopeFor('openai.chat', { stream: true }), STREAM_BODY);
    expect(record.failures).toEqual([]);
    expectErrorFrame(record, { code: 'backend_error', status: 502, message: 'ollama: llama runner process has terminated: exit status 2' });
    expect(onlyEvent(record)).toMatchObject({ status: 'error', errorType: 'backend_error', truncated: true, backend: 'ollama' });
  });

  // A StreamDecoder returns the chunks it decoded before the error line of the same read ('lo' here),
  // as pass-through forwards them (OpenAIStreamWatch).
  it('content read together with the error line still reaches the client before the error', async () => {
    const steps = [ollamaLine({ message: { role: 'assistant', content: 'Hel' }, done: false }), ollamaLine({ message: { role: 'assistant', content: 'lo' }, done: false }) + `${JSON.stringify({ error: 'llama runner process has terminated: exit status 2' })}\n`];
    const record = await runWorkerRequest(ollama(steps), envelopeFor('openai.chat', { stream: true }), STREAM_BODY);
    const { chunks } = openAIEvents(record.messages.slice(0, -1).map((m) => m.body).join(''));
    expect(chunks.map((c) => (c['choices'] as { delta: { content?: string } }[])[0]?.delta.content ?? '').join('')).toBe('Hello');
  });

  it("Ollama's in-stream error line before content → reportFailure", async () => {
    const record = await runWorkerRequest(ollama([`${JSON.stringify({ error: 'model requires more system memory' })}\n`]), envelopeFor('openai.chat', { stream: true }), STREAM_BODY);
    expect(record.failures).toEqual([expect.objectContaining({ code: 'backend_error', message: 'ollama: model requires more system memory' })]);
    expect(record.messages).toEqual([]);
  });

  it('a translated stream that ends early → backend_error after content', async () => {
    const record = await runWorkerRequest(ollama([ollamaLine({ message: { role: 'assistant', content: 'Hel' }, done: false })]), envelopeFor('openai.chat', { stream: true }), STREAM_BODY);
    expectErrorFrame(record, { code: 'backend_error', status: 502, message: 'ollama ended the stream before the answer was complete' });
  });

  it('a cancel of a translated stream after content → no error frame, status cancelled', async () => {
    const controller = new AbortController();
    const cancel = { run: () => controller.abort(new GatewayError('cancelled', 'request cancelled')) };
    const record = await runWorkerRequest(ollama([ollamaLine({ message: { role: 'assistant', content: 'Hel' }, done: false }), cancel, { waitForAbort: true }]),
      envelopeFor('openai.chat', { stream: true }), STREAM_BODY, { signal: controller.signal });
    expect(record.messages.some((m) => m.headers?.get(H.stream) === 'error')).toBe(false);
    expect(onlyEvent(record)).toMatchObject({ status: 'cancelled', errorType: 'cancelled', truncated: true });
  });

  it('a whole answer that is not JSON → reportFailure backend_error', async () => {
    const record = await runWorkerRequest(ollama(['<html>oops</html>'], 'text/html'), envelopeFor('openai.chat'), CLIENT_BODY);
    expect(record.failures).toEqual([expect.objectContaining({ code: 'backend_error', message: 'ollama sent a malformed answer' })]);
  });

  it('a form the backend lacks → unsupported (another backend may serve it) naming the backend, nothing sent', async () => {
    const chatOnly = fakeBackend({ provider: 'ollama', dialects: ['ollama.chat'], forms: { chat: 'ollama.chat' }, answer: { contentType: 'application/json', steps: [] } });
    const record = await runWorkerRequest(chatOnly, envelopeFor('openai.embeddings'), { model: 'lab/embed', input: 'hi' });
    expect(record.failures).toEqual([expect.objectContaining({ code: 'unsupported', param: 'model', message: 'ollama cannot serve embeddings: use a model of another backend' })]);
    expect(chatOnly.calls).toEqual([]);
    expect(record.messages).toEqual([]);
    // Text completions are named for what a client knows them as.
    expect(() => backendDialectFor(chatOnly, 'completion')).toThrow('ollama cannot serve text completions (legacy completions, fill-in-the-middle): use a model of another backend');
  });

  it('a dialect missing a part the request needs is an internal error, logged, and reported', async () => {
    const { passThrough: _missing, ...rest } = dialectOf('openai.chat');
    const broken = rest as Dialect;
    const record = await runWorkerRequest(vllm([]), { ...envelopeFor('openai.chat'), dialect: broken }, CLIENT_BODY);
    expect(record.failures).toEqual([expect.objectContaining({ code: 'internal_error', message: 'dialect openai.chat has no passThrough' })]);
    expect(record.logs).toContainEqual(expect.objectContaining({ level: 'error', msg: 'worker failed', requestId: 'req-test-1' }));
  });
});

describe('WorkerRequest: what only Ollama has', () => {
  it("Ollama's load and unload requests are answered by the worker for a backend that is not Ollama: nothing sent, one JSON answer, an ok event", async () => {
    const backend = vllm([]);
    const unload = await runWorkerRequest(backend, envelopeFor('ollama.generate', { stream: true, requestedModel: 'smart:latest' }), { model: 'smart:latest', keep_alive: 0, prompt: '' });
    expect(backend.calls).toEqual([]);
    expect(unload.messages).toHaveLength(1);
    expect(headerOf(unload, 0, H.stream)).toBeUndefined();
    expect(JSON.parse(unload.messages[0]!.body)).toMatchObject({ model: 'smart:latest', response: '', done: true, done_reason: 'unload' });
    expect(unload.outcomes).toEqual(['done']);
    expect(onlyEvent(unload)).toMatchObject({ status: 'ok', dialect: 'ollama.generate', backend: 'vllm' });
    const load = await runWorkerRequest(backend, envelopeFor('ollama.chat', { stream: true }), { model: 'smart:latest', messages: [] });
    expect(JSON.parse(load.messages[0]!.body)).toMatchObject({ message: { role: 'assistant', content: '' }, done: true, done_reason: 'load' });
    const embed = await runWorkerRequest(backend, envelopeFor('ollama.embed'), { model: 'bge:latest', input: [] });
    expect(JSON.parse(embed.messages[0]!.body)).toEqual({ model: 'bge:latest', embeddings: [] });
    expect(backend.calls).toEqual([]);
  });

  it('a real request in an Ollama dialect is translated as usual', async () => {
    const text = JSON.stringify(WHOLE);
    const backend = fakeBackend({ dialects: ['openai.chat'], forms: { chat: 'openai.chat' }, answer: { contentType: 'application/json', steps: [text] } });
    const record = await runWorkerRequest(backend, envelopeFor('ollama.chat', { requestedModel: 'smart:latest' }), { model: 'smart:latest', messages: [{ role: 'user', content: 'hi' }], stream: false });
    expect(backend.calls).toHaveLength(1);
    expect(JSON.parse(record.messages[0]!.body)).toMatchObject({ model: 'smart:latest', message: { content: 'Hello' }, done: true });
  });

  it('fill-in-the-middle where the backend has none → a clear 400 naming it, nothing sent', async () => {
    const vllmLike = fakeBackend({ dialects: ['openai.chat'], forms: { chat: 'openai.chat', completion: 'openai.completions' }, answer: { contentType: 'application/json', steps: [] } });
    const noFim = { ...vllmLike, fillInTheMiddle: false, send: vllmLike.send };
    const anthropicLike = fakeBackend({ provider: 'anthropic', dialects: ['anthropic.messages'], forms: { chat: 'anthropic.messages' }, answer: { contentType: 'application/json', steps: [] } });
    const body = { model: 'lab/model', prompt: 'def add(a, b):', suffix: '    return c', stream: false };
    const refused = await runWorkerRequest(noFim, envelopeFor('ollama.generate'), body);
    expect(refused.failures).toEqual([expect.objectContaining({ code: 'unsupported', status: 400, param: 'suffix', message: "'suffix' needs fill-in-the-middle text completions, which vllm does not offer: ask for a model served by Ollama" })]);
    expect(vllmLike.calls).toEqual([]);
    const cloud = await runWorkerRequest(anthropicLike, envelopeFor('ollama.generate'), body);
    expect(cloud.failures).toEqual([expect.objectContaining({ code: 'unsupported', message: expect.stringContaining('which anthropic does not offer') as string })]);
    expect(anthropicLike.calls).toEqual([]);
    // Raw text without a suffix is a plain text completion, which vLLM takes.
    const raw = await runWorkerRequest(noFim, envelopeFor('ollama.generate'), { model: 'lab/model', prompt: '<|user|>hi', raw: true, stream: false });
    expect(raw.failures).toEqual([expect.objectContaining({ code: 'backend_error' })]);
    expect(vllmLike.calls).toHaveLength(1);
  });

  it("an Ollama backend's error reaches an Ollama client with Ollama's status and text; an OpenAI client gets the gateway's", async () => {
    const notFound = () => fakeBackend({ provider: 'ollama', dialects: ['ollama.chat'], forms: { chat: 'ollama.chat' }, answer: errorFromStatus('ollama', 500, JSON.stringify({ error: 'llama runner process has terminated: exit status 2' }), { contentType: 'application/json; charset=utf-8' }) });
    const native = await runWorkerRequest(notFound(), envelopeFor('ollama.chat'), { model: 'qwen3:8b', messages: [{ role: 'user', content: 'hi' }], stream: false });
    expect(native.failures).toEqual([expect.objectContaining({ code: 'backend_error', status: 500, message: 'llama runner process has terminated: exit status 2' })]);
    const translated = await runWorkerRequest(notFound(), envelopeFor('openai.chat'), CLIENT_BODY);
    expect(translated.failures).toEqual([expect.objectContaining({ code: 'backend_error', status: 502, message: 'ollama failed with 500: llama runner process has terminated: exit status 2' })]);
  });
});
