import type { ImageWorkerModels } from '@homelab/bus';
import type { Logger } from '@homelab/logging';
import type { ComfyClient } from './comfy-client.ts';
import { missingClasses, type LoadedModel } from './workflow.ts';

/**
 * What the router lists as this lab's image models: every configured workflow while ComfyUI answers
 * (`GET /system_stats`), none while it does not. The answer is cached for a few seconds: the router
 * asks every discovery interval, each router replica on its own.
 */
export class ModelDirectory {
  readonly #client: ComfyClient;
  readonly #models: ReadonlyMap<string, LoadedModel>;
  #cached: { at: number; reply: ImageWorkerModels } | undefined;

  constructor(client: ComfyClient, models: ReadonlyMap<string, LoadedModel>) {
    this.#client = client;
    this.#models = models;
  }

  async describe(now = Date.now()): Promise<ImageWorkerModels> {
    if (this.#cached && now - this.#cached.at < 3000) return this.#cached.reply;
    const reachable = await this.#client.systemStats().then(() => true, () => false);
    const reply: ImageWorkerModels = {
      backend: 'comfyui',
      reachable,
      models: reachable ? [...this.#models.values()].map(({ model }) => ({ id: model.name, kind: model.kind, ...(model.description && { description: model.description }) })) : [],
    };
    this.#cached = { at: now, reply };
    return reply;
  }
}

/**
 * Warns, once ComfyUI answers, about workflow nodes whose classes it does not have (a custom node not
 * installed): such a model would fail every job with ComfyUI's "node … does not exist". Not fatal:
 * ComfyUI may gain the node without the worker restarting.
 */
export async function warnMissingClasses(client: ComfyClient, models: ReadonlyMap<string, LoadedModel>, log: Logger, signal: AbortSignal): Promise<void> {
  for (let attempt = 0; !signal.aborted; attempt++) {
    try {
      const info = await client.objectInfo();
      for (const { model, workflow } of models.values()) {
        for (const { node, classType } of missingClasses(workflow, info)) {
          log.warn({ model: model.name, file: model.workflowFile, node, classType }, `image model '${model.name}': ComfyUI has no node class ${classType} (node ${node}); install it, or its jobs will fail`);
        }
      }
      return;
    } catch {
      await new Promise((r) => setTimeout(r, Math.min(1000 * 2 ** attempt, 60_000)).unref());
    }
  }
}
