import { exitOnStartFailure, runService } from '@homelab/bus';
import { openResponsesStore, serveBackend } from '@homelab/backends';

await runService({
  name: 'worker-cloud',
  streams: ['INFERENCE', 'IMAGES', 'IMAGE_JOBS'],
  description: 'Serves inference requests with the cloud APIs (OpenAI, Anthropic) through their official SDKs, when their keys are configured',
  async start({ nc, log, config, service, mux, events, tracing }) {
    const stops: (() => Promise<void>)[] = [];
    const { openai, anthropic } = config.backends;
    // The Responses API's stored responses: continued and kept here (docs/dialects.md).
    const responses = openai || anthropic ? await openResponsesStore(nc, config, log) : undefined;
    // Each SDK is loaded only when its backend is configured.
    if (openai) {
      const { createOpenAIBackend } = await import('@homelab/backends/openai');
      const backend = createOpenAIBackend({ baseURL: openai.baseURL, apiKey: openai.apiKey, models: openai.models, connectTimeoutMs: openai.connectTimeoutMs, idleTimeoutMs: openai.idleTimeoutMs });
      stops.push(serveBackend({ nc, log, service, mux, events, backend, timeouts: openai, tracing, backendUrl: openai.baseURL, ...(responses && { responses }) }).stop);
      log.info({ baseURL: openai.baseURL, models: openai.models }, 'serving openai');
      // OpenAI's images (docs/images.md): jobs from the work queue, as the ComfyUI worker takes its own.
      const { serveOpenAIImageJobs } = await import('@homelab/backends/openai');
      stops.push((await serveOpenAIImageJobs({ nc, log, events, openai, images: config.images, replicas: config.nats.replicas })).stop);
    }
    if (anthropic) {
      const { createAnthropicBackend } = await import('@homelab/backends/anthropic');
      const backend = createAnthropicBackend({
        baseURL: anthropic.baseURL, apiKey: anthropic.apiKey, models: anthropic.models, connectTimeoutMs: anthropic.connectTimeoutMs, idleTimeoutMs: anthropic.idleTimeoutMs,
        ...(anthropic.defaultMaxTokens && { defaultMaxTokens: anthropic.defaultMaxTokens }),
      });
      stops.push(serveBackend({ nc, log, service, mux, events, backend, timeouts: anthropic, tracing, backendUrl: anthropic.baseURL, ...(responses && { responses }) }).stop);
      log.info({ baseURL: anthropic.baseURL, models: anthropic.models }, 'serving anthropic');
    }
    if (stops.length === 0) log.warn('no cloud API key configured (OPENAI_API_KEY, ANTHROPIC_API_KEY): serving nothing');
    // Every step runs to its end, each backend's answers in flight finishing: one that fails is logged
    // and does not cut the others short (the connection drains only after all of them).
    return async () => {
      const outcomes = await Promise.allSettled(stops.map((stop) => stop()));
      for (const o of outcomes) if (o.status === 'rejected') log.error({ err: o.reason as Error }, 'a shutdown step failed');
    };
  },
}).catch(exitOnStartFailure('worker-cloud'));
