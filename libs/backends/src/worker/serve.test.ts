import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  EventPublisher, GatewayError, H, MicroService, ReplyMux, createHeaders, errorFromReply, inboxPrefixFor, publishCancel, workerSubject,
  type Msg, type NatsConnection,
} from '@homelab/bus';
import { createLogger } from '@homelab/logging';
import { connectAs, startNatsServer, type TestNatsServer } from '@homelab/testing';
import type { Backend, BackendCall } from '../types.ts';
import { serveBackend, type ServedBackend } from './serve.ts';

// The worker's NATS side on a real nats-server with the project's permissions: the router's
// envelope in, the answer to the requester's inbox, `started`/`done` and failure reports to the
// router, cancels, the models endpoint, a graceful stop and a lost connection. The backend is a
// fake whose answer the test controls.

const log = createLogger({ service: 'worker-test', level: 'silent' });
const CHUNK = 'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}\n\n';
const LAST = 'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n';

/**
 * A backend whose stream sends one chunk, then waits for `release()` (or the request's abort) before
 * it ends; or, `refusing`, one that answers 503 at once.
 */
function heldBackend(refusing = false): Backend & { calls: BackendCall[]; release(): void; aborted: string[] } {
  const calls: BackendCall[] = [];
  const aborted: string[] = [];
  let release = (): void => {};
  const released = new Promise<void>((resolve) => { release = resolve; });
  return {
    provider: 'vllm', dialects: new Set(['openai.chat']), forms: { chat: 'openai.chat' }, calls, aborted, release,
    async send(call) {
      calls.push(call);
      if (refusing) throw new GatewayError('backend_unavailable', 'vllm: 503 Service Unavailable');
      async function* body(): AsyncGenerator<Uint8Array> {
        yield Buffer.from(CHUNK);
        const abort = new Promise<void>((resolve) => call.signal.addEventListener('abort', () => resolve(), { once: true }));
        await Promise.race([released, abort]);
        if (call.signal.aborted) {
          aborted.push(String((call.signal.reason as GatewayError).code));
          throw new DOMException('This operation was aborted', 'AbortError');
        }
        yield Buffer.from(LAST);
      }
      return { status: 200, contentType: 'text/event-stream', body: body() };
    },
    listModels: async () => [{ id: 'm', loaded: true, facts: { id: 'not-this', owned_by: 'vllm', max_model_len: 8192 } }],
    close: async () => {},
  };
}

let nats: TestNatsServer;
beforeAll(async () => { nats = await startNatsServer(); });
afterAll(async () => { await nats?.stop(); });

interface Lab {
  worker: ServedBackend;
  backend: ReturnType<typeof heldBackend>;
  workerNc: NatsConnection;
  router: NatsConnection;
  requester: NatsConnection;
  close(): Promise<void>;
}

async function startWorker(options: { refusing?: boolean } = {}): Promise<Lab> {
  const workerNc = await connectAs(nats, 'worker-vllm');
  const router = await connectAs(nats, 'router');
  const requester = await connectAs(nats, 'ingress');
  const mux = new ReplyMux(workerNc, inboxPrefixFor('worker-vllm'));
  const service = new MicroService(workerNc, { name: 'worker-vllm', version: '0', description: 'test' }, log);
  const backend = heldBackend(options.refusing);
  const worker = serveBackend({
    nc: workerNc, log, service, mux, events: new EventPublisher(workerNc, mux), backend, timeouts: { idleTimeoutMs: 10_000, totalTimeoutMs: 30_000 },
  });
  await workerNc.flush();
  return {
    worker, backend, workerNc, router, requester,
    async close() {
      mux.close();
      for (const nc of [workerNc, router, requester]) if (!nc.isClosed()) await nc.close();
    },
  };
}

/** What the requester and the router hear of one request. */
interface Request {
  answers: Msg[];
  outcomes: Msg[];
}

let requests = 0;
/** Sends a streamed chat request as the router does, with the requester's inbox in the envelope. */
function send(lab: Lab, options: { requestId?: string; attempt?: number; ackFailures?: boolean } = {}): Request & { requestId: string } {
  const requestId = options.requestId ?? `serve-test-${++requests}`;
  const seen: Request = { answers: [], outcomes: [] };
  const answerInbox = `${inboxPrefixFor('ingress')}.serve-test.${requestId}`;
  const routerInbox = `${inboxPrefixFor('router')}.serve-test.${requestId}`;
  lab.requester.subscribe(answerInbox, { callback: (_e, m) => { if (m.headers?.get(H.stream) !== 'keepalive') seen.answers.push(m); } });
  lab.router.subscribe(routerInbox, {
    callback: (_e, m) => {
      seen.outcomes.push(m);
      // The router acknowledges a failure report (an error sent as a request).
      if (m.reply && options.ackFailures !== false) m.respond(new Uint8Array(0));
    },
  });
  const headers = createHeaders();
  headers.set(H.requestId, requestId);
  headers.set(H.replyTo, answerInbox);
  headers.set(H.dialect, 'openai.chat');
  headers.set(H.upstreamModel, 'm');
  headers.set(H.attempt, String(options.attempt ?? 1));
  headers.set(H.streaming, '1');
  lab.router.publish(workerSubject('vllm', 'generate'), JSON.stringify({ model: 'm', stream: true, messages: [{ role: 'user', content: 'hi' }] }), { headers, reply: routerInbox });
  return { requestId, ...seen };
}

const words = (msgs: Msg[]): string[] => msgs.map((m) => errorFromReply(m.headers, m.data)?.code ?? Buffer.from(m.data).toString());

describe('serveBackend', () => {
  it('streams the answer to the requester and tells the router started, then done', async () => {
    const lab = await startWorker();
    try {
      const r = send(lab);
      await expect.poll(() => words(r.outcomes)).toEqual(['started']);
      expect(lab.worker.inFlight()).toBe(1);
      lab.backend.release();
      await expect.poll(() => words(r.outcomes)).toEqual(['started', 'done']);
      expect(r.answers.map((m) => m.headers?.get(H.stream) ?? null)).toEqual(['data', null, 'end']);
      expect(r.answers.map((m) => m.string()).join('')).toBe(CHUNK + LAST);
      expect(lab.worker.inFlight()).toBe(0);
    } finally {
      await lab.close();
    }
  });

  it('a cancel of the request aborts the backend call; a cancel naming another attempt does not', async () => {
    const lab = await startWorker();
    try {
      const r = send(lab, { attempt: 2 });
      await expect.poll(() => words(r.outcomes)).toEqual(['started']);
      publishCancel(lab.router, r.requestId, 1);
      await lab.router.flush();
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(lab.backend.aborted).toEqual([]);
      publishCancel(lab.requester, r.requestId);
      await expect.poll(() => lab.backend.aborted).toEqual(['cancelled']);
      await expect.poll(() => words(r.outcomes)).toEqual(['started', 'done']);
      // A cancel after content ends the stream without an error frame: the requester left.
      expect(r.answers.some((m) => m.headers?.get(H.stream) === 'error')).toBe(false);
      expect(lab.worker.inFlight()).toBe(0);
    } finally {
      await lab.close();
    }
  });

  it('a cancel that arrives before its request: the backend is never called, the router hears `cancelled`', async () => {
    const lab = await startWorker();
    try {
      publishCancel(lab.requester, 'early-cancel');
      await lab.requester.flush();
      await lab.workerNc.flush();
      const r = send(lab, { requestId: 'early-cancel' });
      await expect.poll(() => words(r.outcomes)).toEqual(['cancelled']);
      expect(lab.backend.calls).toEqual([]);
    } finally {
      await lab.close();
    }
  });

  it('a failure before content goes to the router; unacknowledged (the router died), to the requester in its dialect', async () => {
    const lab = await startWorker({ refusing: true });
    try {
      const acknowledged = send(lab);
      await expect.poll(() => words(acknowledged.outcomes)).toEqual(['backend_unavailable']);
      // The router decides what follows: the requester hears nothing from the worker.
      await new Promise((resolve) => setTimeout(resolve, 2500));
      expect(acknowledged.answers).toEqual([]);

      const orphaned = send(lab, { ackFailures: false });
      await expect.poll(() => orphaned.answers.length, { timeout: 5000 }).toBe(1);
      expect(errorFromReply(orphaned.answers[0]!.headers, orphaned.answers[0]!.data)).toMatchObject({ code: 'backend_unavailable' });
      expect(JSON.parse(orphaned.answers[0]!.string())).toMatchObject({ error: { code: 'backend_unavailable', message: 'vllm: 503 Service Unavailable' } });
    } finally {
      await lab.close();
    }
  });

  it('answers the models endpoint with the backend\'s models, its facts never replacing the id', async () => {
    const lab = await startWorker();
    try {
      const reply = await lab.router.request(workerSubject('vllm', 'models'), undefined, { timeout: 5000 });
      expect(reply.json()).toEqual({ provider: 'vllm', models: [{ id: 'm', loaded: true, owned_by: 'vllm', max_model_len: 8192 }] });
    } finally {
      await lab.close();
    }
  });

  it('stop() lets an answer in flight finish within the grace', async () => {
    const lab = await startWorker();
    try {
      const finishing = send(lab);
      await expect.poll(() => words(finishing.outcomes)).toEqual(['started']);
      // Detached, as a service's list of shutdown steps holds it.
      const { stop } = lab.worker;
      const stopping = stop(5000);
      lab.backend.release();
      await stopping;
      expect(words(finishing.outcomes)).toEqual(['started', 'done']);
      expect(finishing.answers.at(-1)?.headers?.get(H.stream)).toBe('end');
    } finally {
      await lab.close();
    }
  });

  it('stop() past its grace cuts what is left, with an error at the end of the stream', async () => {
    const lab = await startWorker();
    try {
      const cut = send(lab);
      await expect.poll(() => words(cut.outcomes)).toEqual(['started']);
      await lab.worker.stop(100);
      expect(lab.backend.aborted).toEqual(['backend_unavailable']);
      await expect.poll(() => cut.answers.at(-1)?.headers?.get(H.stream)).toBe('error');
    } finally {
      await lab.close();
    }
  });

  it('a lost bus connection aborts the backend calls in flight: their answers could reach no one', async () => {
    const lab = await startWorker();
    try {
      const r = send(lab);
      await expect.poll(() => words(r.outcomes)).toEqual(['started']);
      await nats.restart({ downMs: 300 });
      await expect.poll(() => lab.backend.aborted, { timeout: 10_000 }).toEqual(['backend_unavailable']);
      await expect.poll(() => lab.worker.inFlight()).toBe(0);
    } finally {
      await lab.close();
    }
  });
});
