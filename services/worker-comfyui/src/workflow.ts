import { readFileSync } from 'node:fs';
import type { ImageMapping, ImageModel } from '@homelab/config';
import type { ApiWorkflow } from './comfy-client.ts';

/*
 * Image models are ComfyUI workflows in API format (ComfyUI's "Export (API)"), with a mapping of
 * which node input takes what from a request (docs/images.md). A workflow is checked when the
 * worker starts: a broken one stops it with a message naming the file, the mapping key and the node.
 */

export class WorkflowError extends Error {
  readonly file: string;
  readonly node: string | undefined;
  constructor(file: string, message: string, node?: string) {
    super(`${file}: ${message}`);
    this.name = 'WorkflowError';
    this.file = file;
    this.node = node;
  }
}

export interface LoadedModel {
  model: ImageModel;
  workflow: ApiWorkflow;
}

/** What a request puts into a workflow (the mapping says where). */
export interface WorkflowValues {
  prompt: string;
  negativePrompt?: string;
  width?: number;
  height?: number;
  seed?: number;
  steps?: number;
  batchSize?: number;
  /** LoadImage values of uploaded inputs (`subfolder/name.png`). */
  image?: string;
  mask?: string;
  denoise?: number;
}

/** Reads and checks a model's workflow file. Throws WorkflowError naming the file, the node and the problem. */
export function loadWorkflow(model: ImageModel): LoadedModel {
  const file = model.workflowFile;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new WorkflowError(file, `image model '${model.name}': cannot read the workflow (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new WorkflowError(file, `image model '${model.name}': not JSON (${(err as Error).message})`);
  }
  return { model, workflow: checkWorkflow(parsed, model, file) };
}

/** Checks a parsed workflow against ComfyUI's API format and the model's mapping. */
export function checkWorkflow(parsed: unknown, model: Pick<ImageModel, 'name' | 'mapping'>, file: string): ApiWorkflow {
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new WorkflowError(file, `image model '${model.name}': a workflow is a JSON object of nodes`);
  const record = parsed as Record<string, unknown>;
  if (Array.isArray(record['nodes']) && Array.isArray(record['links'])) {
    throw new WorkflowError(file, `image model '${model.name}': this is ComfyUI's UI format; export the workflow with "Export (API)" (Workflow menu, or dev mode's "Save (API Format)")`);
  }
  const workflow: ApiWorkflow = {};
  for (const [id, node] of Object.entries(record)) {
    const n = node as { class_type?: unknown; inputs?: unknown } | null;
    if (!n || typeof n !== 'object' || typeof n.class_type !== 'string' || !n.class_type) {
      throw new WorkflowError(file, `image model '${model.name}': node '${id}' has no class_type (not a workflow in API format)`, id);
    }
    if (!n.inputs || typeof n.inputs !== 'object' || Array.isArray(n.inputs)) throw new WorkflowError(file, `image model '${model.name}': node '${id}' (${n.class_type}) has no inputs object`, id);
    for (const [input, value] of Object.entries(n.inputs as Record<string, unknown>)) {
      if (Array.isArray(value) && value.length === 2 && typeof value[0] === 'string' && !(value[0] in record)) {
        throw new WorkflowError(file, `image model '${model.name}': node '${id}' (${n.class_type}) input '${input}' links to node '${value[0]}', which is not in the workflow`, id);
      }
    }
    workflow[id] = node as ApiWorkflow[string];
  }
  for (const [key, target] of Object.entries(model.mapping) as [keyof ImageMapping, string | undefined][]) {
    if (!target) continue;
    const dot = target.indexOf('.');
    const [id, input] = [target.slice(0, dot), target.slice(dot + 1)];
    const node = workflow[id];
    if (!node) throw new WorkflowError(file, `image model '${model.name}': mapping.${key} names node '${id}', which is not in the workflow (nodes: ${Object.keys(workflow).join(', ')})`, id);
    if (!(input in node.inputs)) {
      throw new WorkflowError(file, `image model '${model.name}': mapping.${key} names input '${input}' of node '${id}' (${node.class_type}), which has no such input (inputs: ${Object.keys(node.inputs).join(', ')})`, id);
    }
    if (Array.isArray(node.inputs[input])) {
      throw new WorkflowError(file, `image model '${model.name}': mapping.${key} names input '${input}' of node '${id}' (${node.class_type}), which is a link to another node, not a value`, id);
    }
  }
  return workflow;
}

/** The workflow with a request's values put in where the mapping says: a copy, the template is untouched. */
export function fillWorkflow(loaded: LoadedModel, values: WorkflowValues): ApiWorkflow {
  const prompt = structuredClone(loaded.workflow);
  const set = (target: string | undefined, value: unknown): void => {
    if (!target || value === undefined) return;
    const dot = target.indexOf('.');
    prompt[target.slice(0, dot)]!.inputs[target.slice(dot + 1)] = value;
  };
  const { mapping, defaults } = loaded.model;
  set(mapping.prompt, values.prompt);
  set(mapping.negativePrompt, values.negativePrompt ?? defaults.negativePrompt);
  set(mapping.width, values.width ?? defaults.width);
  set(mapping.height, values.height ?? defaults.height);
  set(mapping.seed, values.seed);
  set(mapping.steps, values.steps ?? defaults.steps);
  set(mapping.batchSize, values.batchSize);
  set(mapping.image, values.image);
  set(mapping.mask, values.mask);
  set(mapping.denoise, values.denoise);
  return prompt;
}

/** The sampler steps a filled workflow will run (the mapping's steps input, or the first KSampler's), for progress. */
export function stepsOf(workflow: ApiWorkflow, mapping: ImageMapping): number | undefined {
  const target = mapping.steps;
  if (target) {
    const dot = target.indexOf('.');
    const v = workflow[target.slice(0, dot)]?.inputs[target.slice(dot + 1)];
    if (typeof v === 'number') return v;
  }
  const sampler = Object.values(workflow).find((n) => /KSampler/.test(n.class_type));
  return typeof sampler?.inputs['steps'] === 'number' ? sampler.inputs['steps'] : undefined;
}

/** Node classes of the workflows that ComfyUI does not have (a custom node not installed): for a warning at start. */
export function missingClasses(workflow: ApiWorkflow, available: Record<string, unknown>): { node: string; classType: string }[] {
  return Object.entries(workflow).filter(([, n]) => !(n.class_type in available)).map(([node, n]) => ({ node, classType: n.class_type }));
}
