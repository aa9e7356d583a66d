import { afterEach, describe, expect, it } from 'vitest';
import { GatewayError } from '@homelab/bus';
import { simToken, startOpenAISimulator, startSimServer, type OpenAISimulatorOptions, type Simulator } from '@homelab/simulators';
import { answerText, gatewayError, TEST_TIMEOUTS } from '../testkit.ts';
import { BackendOrigin, readAll, sdkFetch, transportError, type HttpCall } from './origin.ts';

let sim: Simulator | undefined;
let origin: BackendOrigin | undefined;
afterEach(async () => {
  await origin?.close();
  await sim?.close();
  origin = undefined;
  sim = undefined;
});

async function setup(options: OpenAISimulatorOptions = {}): Promise<BackendOrigin> {
  sim = await startOpenAISimulator({ models: ['m'], tokens: 5, ...options });
  origin = new BackendOrigin({ provider: 'vllm', url: `${sim.url}/`, connectTimeoutMs: 2000 });
  return origin;
}

function chatCall(stream: boolean, options: Partial<HttpCall> = {}): HttpCall {
  return {
    method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hello there' }], stream }),
    signal: new AbortController().signal, ...TEST_TIMEOUTS, ...options,
  };
}

/** Records what reaches the process's last-resort handlers while a test runs. */
function watchProcess(): { seen: unknown[]; stop(): void } {
  const seen: unknown[] = [];
  const onRejection = (reason: unknown): void => { seen.push(reason); };
  const onException = (err: unknown): void => { seen.push(err); };
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
  return { seen, stop: () => { process.off('unhandledRejection', onRejection); process.off('uncaughtException', onException); } };
}

/** Lets timers, socket events and microtasks run. */
const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 50));

describe('BackendOrigin against a simulator', () => {
  it('resolves with a 2xx answer whose body is read as it comes', async () => {
    const backend = await setup();
    const answer = await backend.request(chatCall(false));
    expect(answer).toMatchObject({ status: 200, contentType: 'application/json' });
    expect(JSON.parse(await answerText(answer))).toMatchObject({ object: 'chat.completion', model: 'm' });
    expect(sim!.requests[0]).toMatchObject({ method: 'POST', path: '/v1/chat/completions', completed: true });

    const stream = await backend.request(chatCall(true));
    expect(stream.contentType).toBe('text/event-stream; charset=utf-8');
    const text = await answerText(stream);
    expect(text.startsWith('data: {')).toBe(true);
    expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
  });

  it('a non-2xx answer throws the mapped GatewayError, with the upstream message and the retry hint', async () => {
    const backend = await setup({ faults: { status: 503, retryAfterSeconds: 4 } });
    const err = await gatewayError(backend.request(chatCall(false)));
    expect(err).toMatchObject({ code: 'backend_unavailable', retryAfterMs: 4000, message: 'vllm is unavailable: Service Unavailable' });
  });

  it('connection refused → backend_unavailable "vllm is unreachable: ECONNREFUSED"', async () => {
    const closed = await startOpenAISimulator();
    await closed.close();
    origin = new BackendOrigin({ provider: 'vllm', url: closed.url, connectTimeoutMs: 2000 });
    const err = await gatewayError(origin.request(chatCall(false)));
    expect(err).toMatchObject({ code: 'backend_unavailable', status: 503, retryable: true, message: 'vllm is unreachable: ECONNREFUSED' });
  });

  it('no answer headers within headersTimeoutMs → timeout, and the request is abandoned', async () => {
    const backend = await setup({ faults: { stallBeforeFirstTokenMs: 10_000 } });
    const err = await gatewayError(backend.request(chatCall(false, { headersTimeoutMs: 100 })));
    expect(err).toMatchObject({ code: 'timeout', status: 504, retryable: true, message: 'vllm did not answer within 100 ms' });
    await expect.poll(() => sim!.requests[0]!.aborted).toBe(true);
  });

  it('a body that goes silent for longer than bodyTimeoutMs → timeout while reading', async () => {
    // The simulator sends the stream's headers at once, then stalls before the first token.
    const backend = await setup({ faults: { stallBeforeFirstTokenMs: 10_000 } });
    const answer = await backend.request(chatCall(true, { bodyTimeoutMs: 100 }));
    expect(answer.status).toBe(200);
    const err = await gatewayError(readAll(answer.body));
    expect(err).toMatchObject({ code: 'timeout', status: 504, message: 'vllm sent nothing for 100 ms' });
    await expect.poll(() => sim!.requests[0]!.aborted).toBe(true);
  });

  it('an abort mid-stream → cancelled, and the simulator sees the request aborted', async () => {
    const backend = await setup({ tokens: 500, tokenIntervalMs: 10 });
    const controller = new AbortController();
    const answer = await backend.request(chatCall(true, { signal: controller.signal }));
    let pieces = 0;
    const err = await gatewayError(async () => {
      for await (const _piece of answer.body) if (++pieces === 2) controller.abort();
    });
    expect(err).toMatchObject({ code: 'cancelled', status: 499, retryable: false, message: 'vllm request cancelled' });
    await expect.poll(() => sim!.requests[0]!.aborted).toBe(true);
    expect(sim!.requests[0]!.completed).toBe(false);
  });

  it("an abort whose reason is a GatewayError fails with that reason (the worker's total timeout)", async () => {
    const backend = await setup({ tokens: 500, tokenIntervalMs: 10 });
    const controller = new AbortController();
    const answer = await backend.request(chatCall(true, { signal: controller.signal }));
    const reason = new GatewayError('timeout', 'vllm took longer than 100 ms in total');
    const err = await gatewayError(async () => {
      for await (const _piece of answer.body) controller.abort(reason);
    });
    expect(err).toBe(reason);

    // Before the answer began, too.
    const early = new AbortController();
    early.abort(reason);
    expect(await gatewayError(backend.request(chatCall(false, { signal: early.signal })))).toBe(reason);
  });

  it('an abort while waiting for the answer headers → cancelled, the simulator sees it', async () => {
    const backend = await setup({ faults: { stallBeforeFirstTokenMs: 10_000 } });
    const controller = new AbortController();
    const pending = backend.request(chatCall(false, { signal: controller.signal }));
    await expect.poll(() => sim!.requests.length).toBe(1);
    controller.abort();
    expect(await gatewayError(pending)).toMatchObject({ code: 'cancelled' });
    await expect.poll(() => sim!.requests[0]!.aborted).toBe(true);
  });

  it('a connection dropped mid-stream → backend_error "closed the connection mid-answer", after the bytes before it', async () => {
    const backend = await setup({ faults: { dropAfterChunks: 2 } });
    const answer = await backend.request(chatCall(true));
    const received: Buffer[] = [];
    const err = await gatewayError(async () => {
      for await (const piece of answer.body) received.push(Buffer.from(piece));
    });
    expect(err).toMatchObject({ code: 'backend_error', status: 502, retryable: true, message: 'vllm closed the connection mid-answer' });
    const text = Buffer.concat(received).toString('utf8');
    expect(text).toContain(JSON.stringify(simToken(1)));
    expect(text).not.toContain('[DONE]');
  });

  it('the server closing the connection before any answer → backend_unavailable', async () => {
    sim = await startSimServer({}, (_req, res) => { res.destroy(); });
    origin = new BackendOrigin({ provider: 'ollama', url: sim.url, connectTimeoutMs: 2000 });
    const err = await gatewayError(origin.request(chatCall(false)));
    expect(err).toMatchObject({ code: 'backend_unavailable', message: expect.stringMatching(/^ollama is unreachable: (UND_ERR_SOCKET|ECONNRESET)$/) });
  });
});

describe('BackendOrigin: nothing is thrown after the body ended or was abandoned', () => {
  it('a consumer that stops early, then the server ends the response, then the abort fires', async () => {
    const watch = watchProcess();
    try {
      // The server goes on writing whatever the consumer does, and ends the response when told.
      let finishing = false;
      sim = await startSimServer({}, async (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('data: {"n":1}\n\n');
        for (let n = 2; !finishing; n++) {
          await new Promise((resolve) => setTimeout(resolve, 5));
          if (!res.destroyed) res.write(`data: {"n":${n}}\n\n`);
        }
        if (!res.destroyed) res.end('data: [DONE]\n\n');
      });
      origin = new BackendOrigin({ provider: 'vllm', url: sim.url, connectTimeoutMs: 2000 });
      const controller = new AbortController();
      const answer = await origin.request(chatCall(true, { signal: controller.signal }));
      for await (const piece of answer.body) {
        expect(Buffer.from(piece).toString()).toContain('"n":1');
        break;
      }
      finishing = true;
      await expect.poll(() => sim!.requests[0]!.aborted || sim!.requests[0]!.completed).toBe(true);
      controller.abort(new GatewayError('cancelled', 'request cancelled'));
      await settle();
      expect(watch.seen).toEqual([]);
    } finally {
      watch.stop();
    }
  });

  it('a response already complete when the consumer stops, then the abort fires', async () => {
    const watch = watchProcess();
    try {
      const backend = await setup({ tokens: 3 });
      const controller = new AbortController();
      const answer = await backend.request(chatCall(true, { signal: controller.signal }));
      await expect.poll(() => sim!.requests[0]!.completed).toBe(true);
      for await (const _piece of answer.body) break;
      controller.abort();
      await settle();
      // The same pool serves the next request.
      expect(JSON.parse(await answerText(await backend.request(chatCall(false))))).toMatchObject({ object: 'chat.completion' });
      expect(watch.seen).toEqual([]);
    } finally {
      watch.stop();
    }
  });

  it('a body read to its end, then the abort fires; an error body read, then the abort fires', async () => {
    const watch = watchProcess();
    try {
      const backend = await setup({ tokens: 3 });
      const controller = new AbortController();
      const answer = await backend.request(chatCall(true, { signal: controller.signal }));
      expect(await answerText(answer)).toContain('[DONE]');
      controller.abort();

      sim!.setFaults({ status: 500 });
      const failing = new AbortController();
      expect((await gatewayError(backend.request(chatCall(true, { signal: failing.signal })))).code).toBe('backend_error');
      failing.abort();
      await settle();
      expect(watch.seen).toEqual([]);
    } finally {
      watch.stop();
    }
  });
});

describe('transportError', () => {
  const call = { signal: new AbortController().signal, headersTimeoutMs: 1000, bodyTimeoutMs: 2000 };
  const coded = (code: string): Error => Object.assign(new Error(code), { code });

  it('maps undici and socket codes by phase', () => {
    expect(transportError(coded('UND_ERR_CONNECT_TIMEOUT'), 'vllm', call, 'connect', 3000)).toMatchObject({ code: 'backend_unavailable', message: 'vllm is unreachable: no connection within 3000 ms' });
    expect(transportError(coded('UND_ERR_HEADERS_TIMEOUT'), 'vllm', call, 'connect')).toMatchObject({ code: 'timeout', message: 'vllm did not answer within 1000 ms' });
    expect(transportError(coded('UND_ERR_BODY_TIMEOUT'), 'vllm', call, 'body')).toMatchObject({ code: 'timeout', message: 'vllm sent nothing for 2000 ms' });
    expect(transportError(coded('ECONNRESET'), 'ollama', call, 'connect')).toMatchObject({ code: 'backend_unavailable', message: 'ollama is unreachable: ECONNRESET' });
    expect(transportError(coded('ECONNRESET'), 'ollama', call, 'body')).toMatchObject({ code: 'backend_error', message: 'ollama closed the connection mid-answer' });
    // fetch wraps the cause: TypeError('fetch failed', { cause: { code } }).
    expect(transportError(new TypeError('fetch failed', { cause: coded('ECONNREFUSED') }), 'openai', call, 'connect')).toMatchObject({ code: 'backend_unavailable', message: 'openai is unreachable: ECONNREFUSED' });
    // Happy eyeballs: one failure per address.
    expect(transportError(new AggregateError([new Error('x'), coded('ECONNREFUSED')]), 'vllm', call, 'connect').message).toBe('vllm is unreachable: ECONNREFUSED');
    expect(transportError(new Error('something odd'), 'vllm', call, 'connect')).toMatchObject({ code: 'backend_error', message: 'vllm request failed: something odd' });
  });

  it('a GatewayError stays itself; an aborted signal wins over what the read threw', () => {
    const own = new GatewayError('rate_limited', 'x');
    expect(transportError(own, 'vllm', call, 'body')).toBe(own);
    const controller = new AbortController();
    controller.abort();
    expect(transportError(coded('ECONNRESET'), 'vllm', { ...call, signal: controller.signal }, 'body')).toMatchObject({ code: 'cancelled', message: 'vllm request cancelled' });
  });
});

describe('sdkFetch (the fetch the SDKs use)', () => {
  it('reads JSON answers whole and streams SSE, like fetch', async () => {
    sim = await startSimServer({}, (req, res) => {
      if (req.url === '/json') { res.writeHead(200, { 'content-type': 'application/json' }); res.end('{"a":1}'); return; }
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: 1\n\n');
      setTimeout(() => res.end('data: 2\n\n'), 20);
    });
    const f = sdkFetch({ connectTimeoutMs: 2000, bodyTimeoutMs: 5000 });
    expect(await (await f(`${sim.url}/json`, { method: 'POST', body: '{}' })).json()).toEqual({ a: 1 });
    const sse = await f(`${sim.url}/sse`);
    expect(sse.headers.get('content-type')).toBe('text/event-stream');
    expect(await sse.text()).toBe('data: 1\n\ndata: 2\n\n');
  });

  it('fails like fetch: refused → TypeError("fetch failed") with the cause; abort → AbortError; silence → the body timeout', async () => {
    const closed = await startOpenAISimulator();
    await closed.close();
    const f = sdkFetch({ connectTimeoutMs: 2000, bodyTimeoutMs: 100 });
    const refused = await f(closed.url).then(() => undefined, (e: unknown) => e as TypeError & { cause?: { code?: string } });
    expect(refused).toBeInstanceOf(TypeError);
    expect(refused?.message).toBe('fetch failed');
    expect(refused?.cause?.code).toBe('ECONNREFUSED');

    sim = await startSimServer({}, (req, res) => {
      if (req.url === '/silent') { res.writeHead(200, { 'content-type': 'text/event-stream' }); res.write('data: 1\n\n'); }
      // Otherwise: never answers.
    });
    const controller = new AbortController();
    const pending = f(`${sim.url}/hang`, { signal: controller.signal });
    await expect.poll(() => sim!.requests.length).toBe(1);
    controller.abort();
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });

    const silent = await f(`${sim.url}/silent`);
    const failure = await silent.text().then(() => undefined, (e: unknown) => e as Error);
    expect(transportError(failure, 'openai', { signal: new AbortController().signal, headersTimeoutMs: 1000, bodyTimeoutMs: 100 }, 'body'))
      .toMatchObject({ code: 'timeout', message: 'openai sent nothing for 100 ms' });
  });
});
