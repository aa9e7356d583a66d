import { GatewayError, keyAllowsModel, type ImageBackend, type ImageRequest, type KeyRecord } from '@homelab/bus';
import type { ImageModel, ImagesConfig } from '@homelab/config';

/*
 * Which backend makes a requested image, and with what: pure functions, tested without a bus.
 * Model names: `comfyui/<model>` or `openai/<model>` explicitly; an alias of `images.aliases`; a lab
 * model by name (a workflow of `images.models`); a cloud image model by the configured list or its name
 * (`gpt-image-*`, `dall-e-*`, `chatgpt-image-*`). An alias puts the lab's workflow first and falls back to
 * the cloud only where the request and its key allow the cloud (docs/images.md).
 */

export interface ImageCandidate {
  backend: ImageBackend;
  model: string;
}

export interface ImageResolution {
  candidates: ImageCandidate[];
  reason: string;
  skipped: string[];
}

/** What the router knows now of the image backends. */
export interface ImageBackendView {
  /** ComfyUI's worker answered discovery and ComfyUI answered it. */
  comfyuiUp(): boolean;
  /** An OpenAI key is configured. */
  openai: boolean;
}

const CLOUD_IMAGE_MODEL = /^(gpt-image-|dall-e-|chatgpt-image-)/;

export function resolveImageModel(requested: string | undefined | null, config: Pick<ImagesConfig, 'models' | 'aliases' | 'cloudModels'>): ImageResolution & { requested: string } {
  const name = requested || defaultImageModel(config);
  if (!name) throw new GatewayError('invalid_request', 'no image model is configured in this lab; name one (e.g. gpt-image-1)', { param: 'model' });
  const skipped: string[] = [];
  const slash = name.indexOf('/');
  const prefix = slash > 0 ? name.slice(0, slash) : '';
  if (prefix === 'comfyui' || prefix === 'openai') {
    const model = name.slice(slash + 1);
    const candidate = { backend: prefix, model } as ImageCandidate;
    if (prefix === 'comfyui' && !config.models[model]) throw notFound(name);
    return { requested: name, candidates: [candidate], reason: `explicit:${prefix}`, skipped };
  }
  const alias = config.aliases[name];
  if (alias) {
    const candidates: ImageCandidate[] = alias.map((entry) => ({ backend: entry.slice(0, entry.indexOf('/')) as ImageBackend, model: entry.slice(entry.indexOf('/') + 1) }));
    return { requested: name, candidates, reason: `alias:${name}`, skipped };
  }
  if (config.models[name]) return { requested: name, candidates: [{ backend: 'comfyui', model: name }], reason: 'configured:comfyui', skipped };
  if (config.cloudModels.includes(name) || CLOUD_IMAGE_MODEL.test(name)) {
    return { requested: name, candidates: [{ backend: 'openai', model: name }], reason: `${config.cloudModels.includes(name) ? 'configured' : 'prefix'}:openai`, skipped };
  }
  throw notFound(name);
}

/** OpenAI's `model` is optional: the alias `image` when there is one, else the first lab model. */
export function defaultImageModel(config: Pick<ImagesConfig, 'models' | 'aliases'>): string | undefined {
  if (config.aliases['image']) return 'image';
  return Object.keys(config.models)[0];
}

function notFound(name: string): GatewayError {
  return new GatewayError('model_not_found', `The image model '${name}' does not exist in this lab (GET /v1/models lists them)`, { param: 'model' });
}

export interface PlanInput {
  /** The request stays in the lab (header, key or `routing.localOnly`). */
  localOnly: boolean;
  key?: KeyRecord;
  /** The key's cloud token budget that is spent, if any. */
  keyBudget?: 'daily' | 'monthly';
  /** Today's cloud image spend reached `images.cloudDailyBudgetUsd`. */
  cloudBudgetReached: boolean;
}

/** Orders (the lab first) and filters the candidates; the first usable one gets the job. */
export function planImage(resolution: ImageResolution & { requested: string }, view: ImageBackendView, input: PlanInput): ImageCandidate & { routeReason: string } {
  const { key } = input;
  if (key && !keyAllowsModel(key, resolution.requested)) throw new GatewayError('forbidden', `key '${key.name}' may not use the model '${resolution.requested}'`, { param: 'model' });
  const ordered = [...resolution.candidates.filter((c) => c.backend === 'comfyui'), ...resolution.candidates.filter((c) => c.backend !== 'comfyui')];
  const skipped = [...resolution.skipped];
  let budget = false;
  for (const c of ordered) {
    if (key?.backends && !(key.backends as string[]).includes(c.backend)) { skipped.push(`${c.backend} not allowed for key`); continue; }
    if (c.backend === 'openai') {
      if (!view.openai) { skipped.push('openai not configured (OPENAI_API_KEY)'); continue; }
      if (input.localOnly) { skipped.push('openai skipped (local-only)'); continue; }
      if (input.keyBudget) { budget = true; skipped.push(`openai skipped (${input.keyBudget} budget of key ${key?.name} reached)`); continue; }
      if (input.cloudBudgetReached) { skipped.push('openai skipped (daily cloud image budget reached)'); continue; }
    } else if (!view.comfyuiUp()) {
      skipped.push('comfyui unreachable');
      continue;
    }
    return { ...c, routeReason: [resolution.reason, ...skipped, c.backend].join(' > ') };
  }
  if (budget && key) {
    const limit = input.keyBudget === 'daily' ? key.dailyTokens : key.monthlyTokens;
    throw new GatewayError('budget_exceeded', `the ${input.keyBudget} cloud token budget of key '${key.name}' (${limit} tokens) is used up; the lab's own image models are still served if the key allows them`);
  }
  if (input.localOnly && ordered.every((c) => c.backend === 'openai')) {
    throw new GatewayError('no_backend', `'${resolution.requested}' is a cloud image model and this request must stay in the lab (local-only)`, { param: 'model' });
  }
  throw new GatewayError('no_backend', `no backend can make '${resolution.requested}' images now (${skipped.join(', ')})`, { param: 'model' });
}

export interface JobParameters {
  width?: number;
  height?: number;
  size?: string;
  n: number;
  steps?: number;
  outputFormat: 'png' | 'jpeg' | 'webp';
}

/**
 * Checks a request against the chosen model and works out the job's parameters: a lab workflow
 * takes only what its mapping can put somewhere; OpenAI takes its own options as they are.
 */
export function jobParameters(request: ImageRequest, candidate: ImageCandidate, config: Pick<ImagesConfig, 'models' | 'maxImagesPerRequest'>, kind: 'generate' | 'edit'): JobParameters {
  const n = request.n ?? 1;
  if (n > config.maxImagesPerRequest) throw new GatewayError('invalid_request', `'n' is ${n}; this lab makes at most ${config.maxImagesPerRequest} images per request (images.maxImagesPerRequest)`, { param: 'n' });
  if (candidate.backend === 'openai') {
    if (kind === 'edit' && !request.images?.length) throw new GatewayError('invalid_request', 'an edit needs an image', { param: 'image' });
    return { n, ...(request.size && { size: request.size }), outputFormat: request.output_format ?? 'png' };
  }
  const model = config.models[candidate.model]!;
  checkKind(model, kind, request);
  if (request.output_format && request.output_format !== 'png') {
    throw new GatewayError('invalid_request', `the lab's workflow '${model.name}' makes PNG images; 'output_format' ${request.output_format} is not available`, { param: 'output_format' });
  }
  if (n > 1 && !model.mapping.batchSize) throw new GatewayError('invalid_request', `the image model '${model.name}' makes one image per request (its mapping has no batchSize)`, { param: 'n' });
  const params: JobParameters = { n, outputFormat: 'png' };
  if (request.size && request.size !== 'auto') {
    const [width, height] = request.size.split('x').map(Number) as [number, number];
    if (!model.mapping.width || !model.mapping.height) throw new GatewayError('invalid_request', `the image model '${model.name}' has a fixed size (its input image's, or the workflow's); leave 'size' out or use 'auto'`, { param: 'size' });
    if (width < 16 || height < 16 || width > model.maxSide || height > model.maxSide) {
      throw new GatewayError('invalid_request', `'size' ${request.size}: each side must be from 16 to ${model.maxSide} pixels for '${model.name}'`, { param: 'size' });
    }
    if (width % 8 !== 0 || height % 8 !== 0) throw new GatewayError('invalid_request', `'size' ${request.size}: width and height must be multiples of 8 (latent images are an eighth of the size)`, { param: 'size' });
    params.width = width;
    params.height = height;
  } else if (model.mapping.width && model.mapping.height) {
    if (model.defaults.width) params.width = model.defaults.width;
    if (model.defaults.height) params.height = model.defaults.height;
  }
  if (request.steps != null) {
    if (!model.mapping.steps) throw new GatewayError('invalid_request', `the image model '${model.name}' does not take 'steps' (its mapping has none)`, { param: 'steps' });
    if (request.steps > model.maxSteps) throw new GatewayError('invalid_request', `'steps' is ${request.steps}; '${model.name}' takes at most ${model.maxSteps}`, { param: 'steps' });
    params.steps = request.steps;
  }
  return params;
}

function checkKind(model: ImageModel, kind: 'generate' | 'edit', request: ImageRequest): void {
  if (kind === 'generate' && model.kind !== 'text-to-image') {
    throw new GatewayError('invalid_request', `the image model '${model.name}' edits an input image (${model.kind}); use POST /v1/images/edits`, { param: 'model' });
  }
  if (kind === 'edit') {
    if (model.kind === 'text-to-image') throw new GatewayError('invalid_request', `the image model '${model.name}' makes images from text; use an image-to-image model for edits`, { param: 'model' });
    if (!request.images?.length) throw new GatewayError('invalid_request', 'an edit needs an image', { param: 'image' });
    if (request.mask && model.kind !== 'inpainting') throw new GatewayError('invalid_request', `the image model '${model.name}' takes no mask; use an inpainting model`, { param: 'mask' });
    if (!request.mask && model.kind === 'inpainting') throw new GatewayError('invalid_request', `the image model '${model.name}' inpaints: send a mask`, { param: 'mask' });
  }
}
