import { createServer } from 'node:http';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace';
import { describe, expect, it } from 'vitest';
import { GenAiSpanAttr, HomelabSpanAttr, formatTraceparent, genAiAttributes, genAiSpanName, initTracing, natsAttributes, parseTraceparent } from './index.ts';

const TRACEPARENT = /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;
const PARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

describe('traceparent', () => {
  it('parses and formats W3C trace context, rejecting malformed and all-zero ids', () => {
    const ctx = parseTraceparent(PARENT)!;
    expect(ctx).toEqual({ traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', traceFlags: 1, isRemote: true });
    expect(formatTraceparent(ctx)).toBe(PARENT);
    for (const bad of [undefined, '', 'garbage', '01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', '00-00000000000000000000000000000000-00f067aa0ba902b7-01', '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01']) {
      expect(parseTraceparent(bad)).toBeUndefined();
    }
  });
});

describe('initTracing', () => {
  it('is off without OTEL_EXPORTER_OTLP_ENDPOINT, yet hands a child traceparent of the same trace downstream', async () => {
    const tracing = await initTracing('router', { env: {} });
    expect(tracing.enabled).toBe(false);
    const hop = tracing.startHop('chat smart', { traceparent: PARENT, kind: 'server' });
    expect(hop.span.isRecording()).toBe(false);
    expect(hop.traceId).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
    expect(hop.traceparent).toMatch(TRACEPARENT);
    expect(hop.traceparent).not.toBe(PARENT);
    expect(hop.traceparent.endsWith('-01')).toBe(true);
    // No parent, or a broken one: a new trace starts here.
    for (const parent of [undefined, 'not-a-traceparent']) {
      const root = tracing.startHop('x', { traceparent: parent });
      expect(root.traceparent).toMatch(TRACEPARENT);
      expect(root.traceId).not.toBe('4bf92f3577b34da6a3ce929d0e0e4736');
    }
    hop.setAttributes({ a: 1 }).fail(new Error('x')).end();
    expect((await initTracing('x', { env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318', OTEL_SDK_DISABLED: 'true' } })).enabled).toBe(false);
    expect((await initTracing('x', { env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318', OTEL_TRACES_EXPORTER: 'none' } })).enabled).toBe(false);
  });

  it('one span per hop, ingress → router → worker → backend, each the child of the one before, with GenAI attributes', async () => {
    const exporter = new InMemorySpanExporter();
    const processors = [new SimpleSpanProcessor({ exporter })];
    // Each service has its own Tracing, as each is its own process; only the traceparent crosses.
    const ingress = await initTracing('ingress', { env: {}, spanProcessors: processors });
    const router = await initTracing('router', { env: {}, spanProcessors: processors });
    const worker = await initTracing('worker-vllm', { env: {}, spanProcessors: processors });
    expect(ingress.enabled).toBe(true);

    const http = ingress.startHop('POST /v1/chat/completions', { kind: 'server', attributes: { 'http.request.method': 'POST' } });
    const route = router.startHop(genAiSpanName('chat', 'smart'), {
      traceparent: http.traceparent, kind: 'server',
      attributes: { ...natsAttributes('inference.chat.completions'), ...genAiAttributes({ operation: 'chat', requestModel: 'smart' }), [HomelabSpanAttr.requestId]: 'req_1' },
    });
    const work = worker.startHop(genAiSpanName('chat', 'smart'), { traceparent: route.traceparent, kind: 'server', attributes: natsAttributes('worker.vllm.chat') });
    const call = worker.startHop(genAiSpanName('chat', 'Qwen/Qwen2.5-7B-Instruct'), {
      traceparent: work.traceparent, kind: 'client',
      attributes: genAiAttributes({ operation: 'chat', provider: 'vllm', requestModel: 'Qwen/Qwen2.5-7B-Instruct', serverAddress: '127.0.0.1', serverPort: 8000 }),
    });
    call.setAttributes(genAiAttributes({ operation: 'chat', responseModel: 'Qwen/Qwen2.5-7B-Instruct', inputTokens: 26, outputTokens: 282, finishReasons: ['stop'] }));
    call.end();
    work.end();
    route.setAttributes(genAiAttributes({ operation: 'chat', provider: 'vllm', responseModel: 'Qwen/Qwen2.5-7B-Instruct' })).end();
    http.end();

    const spans = exporter.getFinishedSpans();
    expect(spans.map((s) => s.name)).toEqual(['chat Qwen/Qwen2.5-7B-Instruct', 'chat smart', 'chat smart', 'POST /v1/chat/completions']);
    const [backend, workerSpan, routerSpan, ingressSpan] = spans as [typeof spans[number], typeof spans[number], typeof spans[number], typeof spans[number]];
    const traceId = ingressSpan.spanContext().traceId;
    expect(spans.every((s) => s.spanContext().traceId === traceId)).toBe(true);
    expect(ingressSpan.parentSpanContext).toBeUndefined();
    expect(routerSpan.parentSpanContext?.spanId).toBe(ingressSpan.spanContext().spanId);
    expect(workerSpan.parentSpanContext?.spanId).toBe(routerSpan.spanContext().spanId);
    expect(backend.parentSpanContext?.spanId).toBe(workerSpan.spanContext().spanId);
    expect(backend.kind).toBe(SpanKind.CLIENT);
    expect(routerSpan.kind).toBe(SpanKind.SERVER);
    expect(backend.attributes).toMatchObject({
      [GenAiSpanAttr.operationName]: 'chat', [GenAiSpanAttr.providerName]: 'vllm', [GenAiSpanAttr.requestModel]: 'Qwen/Qwen2.5-7B-Instruct',
      [GenAiSpanAttr.responseModel]: 'Qwen/Qwen2.5-7B-Instruct', [GenAiSpanAttr.inputTokens]: 26, [GenAiSpanAttr.outputTokens]: 282,
      [GenAiSpanAttr.responseFinishReasons]: ['stop'], 'server.port': 8000,
    });
    expect(routerSpan.attributes).toMatchObject({ 'messaging.system': 'nats', 'messaging.destination.name': 'inference.chat.completions', [HomelabSpanAttr.requestId]: 'req_1' });
    expect(routerSpan.resource.attributes['service.name']).toBe('router');
    expect(backend.resource.attributes['service.name']).toBe('worker-vllm');
    await Promise.all([ingress.shutdown(), router.shutdown(), worker.shutdown()]);
  });

  it('a failed hop has status ERROR and error.type; an unsampled parent keeps its hops unrecorded', async () => {
    const exporter = new InMemorySpanExporter();
    const tracing = await initTracing('router', { env: {}, spanProcessors: [new SimpleSpanProcessor({ exporter })] });
    const hop = tracing.startHop('chat smart', { traceparent: PARENT, startTime: Date.now() - 50 });
    hop.fail(Object.assign(new Error('vLLM refused the connection'), { code: 'backend_unavailable' })).end();
    const [span] = exporter.getFinishedSpans();
    expect(span!.status).toEqual({ code: SpanStatusCode.ERROR, message: 'vLLM refused the connection' });
    expect(span!.attributes['error.type']).toBe('backend_unavailable');
    expect(span!.events.map((e) => e.name)).toEqual(['exception']);
    expect(span!.parentSpanContext?.spanId).toBe('00f067aa0ba902b7');

    const unsampled = tracing.startHop('chat smart', { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00' });
    expect(unsampled.span.isRecording()).toBe(false);
    expect(unsampled.traceparent).toMatch(/^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-00$/);
    unsampled.end();
    expect(exporter.getFinishedSpans()).toHaveLength(1);
    await tracing.shutdown();
  });

  it('exports over OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT (a collector on loopback)', async () => {
    const bodies: { path: string; type: string; body: Buffer }[] = [];
    const collector = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        bodies.push({ path: req.url ?? '', type: String(req.headers['content-type']), body: Buffer.concat(chunks) });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((r) => collector.listen(0, '127.0.0.1', r));
    const port = (collector.address() as { port: number }).port;
    try {
      const tracing = await initTracing('worker-vllm', { env: { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}/` } });
      expect(tracing.enabled).toBe(true);
      const hop = tracing.startHop('chat Qwen/Qwen2.5-7B-Instruct', { traceparent: PARENT, kind: 'client', attributes: genAiAttributes({ operation: 'chat', provider: 'vllm' }) });
      hop.end();
      await tracing.shutdown(); // flushes the batch
      expect(bodies).toHaveLength(1);
      expect(bodies[0]!.path).toBe('/v1/traces');
      const text = bodies[0]!.body.toString('utf8');
      for (const s of ['chat Qwen/Qwen2.5-7B-Instruct', 'worker-vllm', 'gen_ai.provider.name']) expect(text).toContain(s);
    } finally {
      await new Promise<void>((r) => collector.close(() => r()));
    }
  });
});
