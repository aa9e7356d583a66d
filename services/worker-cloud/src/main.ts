import { exitOnStartFailure, runService } from '@homelab/bus';
import { createAnthropicBackend, createOpenAIBackend, serveBackend, serveOpenAIImageJobs } from '@homelab/backends';

await runService({
  name: 'worker-cloud',
  streams: ['INFERENCE', 'IMAGES', 'IMAGE_JOBS'],
  description: 'Serves inference requests with the cloud APIs (OpenAI, Anthropic) when their keys are configured',
  async start({ nc, log, config, service, events, tracing }) {
    const stops: (() => Promise<void>)[] = [];
    const { openai, anthropic } = config.backends;
    if (openai) {
      const backend = createOpenAIBackend({ baseURL: openai.baseURL, apiKey: openai.apiKey, models: openai.models, timeoutMs: openai.totalTimeoutMs, connectTimeoutMs: openai.connectTimeoutMs });
      stops.push(serveBackend({ nc, log, service, events, backend, timeouts: openai, tracing, backendUrl: openai.baseURL }).stop);
      log.info({ baseURL: openai.baseURL, models: openai.models }, 'serving openai');
      // OpenAI's images (docs/images.md): jobs from the work queue, as the ComfyUI worker takes its own.
      stops.push((await serveOpenAIImageJobs({ nc, log, events, openai, images: config.images, replicas: config.nats.replicas })).stop);
    }
    if (anthropic) {
      const backend = createAnthropicBackend({
        baseURL: anthropic.baseURL, apiKey: anthropic.apiKey, models: anthropic.models, timeoutMs: anthropic.totalTimeoutMs, connectTimeoutMs: anthropic.connectTimeoutMs,
        ...(anthropic.defaultMaxTokens && { defaultMaxTokens: anthropic.defaultMaxTokens }),
      });
      stops.push(serveBackend({ nc, log, service, events, backend, timeouts: anthropic, tracing, backendUrl: anthropic.baseURL }).stop);
      log.info({ baseURL: anthropic.baseURL, models: anthropic.models }, 'serving anthropic');
    }
    if (stops.length === 0) log.warn('no cloud API key configured (OPENAI_API_KEY, ANTHROPIC_API_KEY): serving nothing');
    return async () => { await Promise.all(stops.map((s) => s())); };
  },
}).catch(exitOnStartFailure('worker-cloud'));
