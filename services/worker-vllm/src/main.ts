import { exitOnStartFailure, runService } from '@homelab/bus';
import { openResponsesStore, serveBackend } from '@homelab/backends';
import { createVllmBackend } from '@homelab/backends/vllm';

await runService({
  name: 'worker-vllm',
  streams: ['INFERENCE'],
  description: 'Serves inference requests with the lab\'s vLLM (OpenAI-compatible server on the AI node), passing its bytes through',
  async start({ nc, log, config, service, mux, events, tracing }) {
    const settings = config.backends.vllm;
    if (!settings) {
      // Stay up and discoverable: the router sees no vLLM worker endpoints and skips vLLM.
      log.warn('vllm is not configured (no address): serving nothing');
      return;
    }
    const backend = createVllmBackend({ url: settings.url, connectTimeoutMs: settings.connectTimeoutMs, ...(settings.apiKey && { apiKey: settings.apiKey }) });
    // The Responses API's stored responses: continued and kept here (docs/dialects.md).
    const responses = await openResponsesStore(nc, config, log);
    const worker = serveBackend({ nc, log, service, mux, events, backend, timeouts: settings, tracing, backendUrl: settings.url, responses });
    log.info({ url: settings.url }, 'serving vllm');
    return () => worker.stop();
  },
}).catch(exitOnStartFailure('worker-vllm'));
