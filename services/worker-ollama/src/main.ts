import { exitOnStartFailure, runService } from '@homelab/bus';
import { openResponsesStore, serveBackend } from '@homelab/backends';
import { createOllamaBackend } from '@homelab/backends/ollama';

await runService({
  name: 'worker-ollama',
  streams: ['INFERENCE'],
  description: 'Serves inference requests with the lab\'s Ollama (its native API: Ollama clients pass through, others are translated)',
  async start({ nc, log, config, service, mux, events, tracing }) {
    const settings = config.backends.ollama;
    if (!settings) {
      log.warn('ollama is not configured (no address): serving nothing');
      return;
    }
    const backend = createOllamaBackend({ url: settings.url, connectTimeoutMs: settings.connectTimeoutMs, ...(settings.keepAlive && { keepAlive: settings.keepAlive }) });
    // The Responses API's stored responses: continued and kept here (docs/dialects.md).
    const responses = await openResponsesStore(nc, config, log);
    const worker = serveBackend({ nc, log, service, mux, events, backend, timeouts: settings, tracing, backendUrl: settings.url, responses });
    log.info({ url: settings.url }, 'serving ollama');
    return () => worker.stop();
  },
}).catch(exitOnStartFailure('worker-ollama'));
