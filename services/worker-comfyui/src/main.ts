import { ImageFiles, ImageJobStore, Subjects, exitOnStartFailure, respondJson, runService } from '@homelab/bus';
import { serveImageJobs } from '@homelab/backends/images';
import { ComfyClient } from './comfy-client.ts';
import { ModelDirectory, warnMissingClasses } from './models.ts';
import { runComfyJob } from './run.ts';
import { loadWorkflow, type LoadedModel } from './workflow.ts';

await runService({
  name: 'worker-comfyui',
  streams: ['IMAGES', 'IMAGE_JOBS'],
  description: 'Runs image jobs on the lab\'s ComfyUI: workflows from the work queue, progress as events, images into the object store',
  async start({ nc, log, config, service, events }) {
    // A broken workflow file stops the worker here, naming the file and the node.
    const models = new Map<string, LoadedModel>(Object.values(config.images.models).map((m) => [m.name, loadWorkflow(m)]));
    const settings = config.images.comfyui;
    if (!settings) {
      log.warn('comfyui is not configured (no address; COMFYUI_URL): serving nothing');
      return;
    }
    const client = new ComfyClient(settings.url, { connectTimeoutMs: settings.connectTimeoutMs });
    const stopping = new AbortController();
    void warnMissingClasses(client, models, log, stopping.signal);
    const { images } = config;
    const jobs = await ImageJobStore.open(nc, { replicas: config.nats.replicas, keepHours: images.jobs.keepHours });
    const files = await ImageFiles.open(nc, { replicas: config.nats.replicas, ttlHours: images.files.ttlHours });
    const directory = new ModelDirectory(client, models);
    service.addEndpoint('models', {
      subject: Subjects.imageWorkerModels.subject, queue: 'worker-comfyui', schema: null,
      handler: async ({ msg }) => respondJson(msg, await directory.describe()),
    });
    const server = await serveImageJobs({
      nc, log, events, jobs, files, backend: 'comfyui', concurrency: settings.concurrency, ackWaitMs: images.jobs.ackWaitMs, maxAttempts: images.jobs.maxAttempts,
      executor: (ctx) => runComfyJob(ctx, { client, models, settings }),
    });
    log.info({ url: settings.url, models: [...models.keys()], concurrency: settings.concurrency }, 'serving comfyui');
    return async () => {
      stopping.abort();
      await server.stop();
    };
  },
}).catch(exitOnStartFailure('worker-comfyui'));
