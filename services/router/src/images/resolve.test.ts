import { describe, expect, it } from 'vitest';
import { parseConfig } from '@homelab/config';
import type { KeyRecord } from '@homelab/bus';
import { defaultImageModel, jobParameters, planImage, resolveImageModel, type ImageBackendView } from './resolve.ts';

const config = parseConfig(`
nodes:
  ai-node:
    address: 127.0.0.1
    services:
      comfyui: { kind: comfyui, port: 8188 }
images:
  models:
    sdxl: { workflow: a.json, mapping: { prompt: 6.text, width: 5.width, height: 5.height, steps: 3.steps, batchSize: 5.batch_size }, defaults: { width: 1024, height: 1024 }, maxSide: 1536, maxSteps: 80 }
    fixed: { workflow: b.json, mapping: { prompt: 6.text } }
    img2img: { workflow: c.json, mapping: { prompt: 4.text, image: 1.image } }
    inpaint: { workflow: d.json, mapping: { prompt: 4.text, image: 1.image, mask: 2.image } }
  aliases:
    image: [comfyui/sdxl, openai/gpt-image-1]
  cloudModels: [gpt-image-1]
`, '/lab/lab.yaml').images;

const up: ImageBackendView = { comfyuiUp: () => true, openai: true };
const down: ImageBackendView = { comfyuiUp: () => false, openai: true };
const key = (extra: Partial<KeyRecord> = {}): KeyRecord => ({ name: 'k', sha256: '0'.repeat(64), createdAt: 'config', ...extra });
const plan = (model: string | undefined, view: ImageBackendView, input: Partial<Parameters<typeof planImage>[2]> = {}) =>
  planImage(resolveImageModel(model, config), view, { localOnly: false, cloudBudgetReached: false, ...input });

describe('image model resolution', () => {
  it('understands explicit, alias, lab and cloud names; the default is the alias `image`', () => {
    expect(resolveImageModel('comfyui/sdxl', config)).toMatchObject({ candidates: [{ backend: 'comfyui', model: 'sdxl' }], reason: 'explicit:comfyui' });
    expect(resolveImageModel('image', config)).toMatchObject({ candidates: [{ backend: 'comfyui', model: 'sdxl' }, { backend: 'openai', model: 'gpt-image-1' }], reason: 'alias:image' });
    expect(resolveImageModel('fixed', config).reason).toBe('configured:comfyui');
    expect(resolveImageModel('dall-e-3', config)).toMatchObject({ candidates: [{ backend: 'openai', model: 'dall-e-3' }], reason: 'prefix:openai' });
    expect(resolveImageModel(undefined, config).requested).toBe('image');
    expect(defaultImageModel({ models: config.models, aliases: {} })).toBe('sdxl');
    expect(() => resolveImageModel('comfyui/nope', config)).toThrowError(expect.objectContaining({ code: 'model_not_found', param: 'model' }));
    expect(() => resolveImageModel('llama3', config)).toThrowError(expect.objectContaining({ code: 'model_not_found' }));
  });

  it('an alias tries the lab first and falls back to the cloud only where the request and its key allow it', () => {
    expect(plan('image', up)).toMatchObject({ backend: 'comfyui', model: 'sdxl', routeReason: 'alias:image > comfyui' });
    expect(plan('image', down)).toMatchObject({ backend: 'openai', routeReason: 'alias:image > comfyui unreachable > openai' });
    expect(() => plan('image', down, { localOnly: true })).toThrowError(expect.objectContaining({ code: 'no_backend', message: expect.stringContaining('openai skipped (local-only)') }));
    expect(() => plan('image', down, { key: key({ localOnly: true }), localOnly: true })).toThrowError(expect.objectContaining({ code: 'no_backend' }));
    expect(() => plan('image', down, { key: key({ backends: ['comfyui'] }) })).toThrowError(expect.objectContaining({ message: expect.stringContaining('openai not allowed for key') }));
    expect(() => plan('image', down, { key: key({ dailyTokens: 10 }), keyBudget: 'daily' })).toThrowError(expect.objectContaining({ code: 'budget_exceeded', status: 429 }));
    expect(() => plan('image', down, { cloudBudgetReached: true })).toThrowError(expect.objectContaining({ message: expect.stringContaining('daily cloud image budget reached') }));
    expect(() => plan('gpt-image-1', up, { localOnly: true })).toThrowError(expect.objectContaining({ code: 'no_backend', message: expect.stringContaining('must stay in the lab') }));
    expect(() => plan('gpt-image-1', { ...up, openai: false })).toThrowError(expect.objectContaining({ message: expect.stringContaining('OPENAI_API_KEY') }));
    expect(() => plan('sdxl', up, { key: key({ models: ['img2img'] }) })).toThrowError(expect.objectContaining({ code: 'forbidden', status: 403 }));
  });
});

describe('job parameters', () => {
  const local = { backend: 'comfyui' as const, model: 'sdxl' };
  const bounds = { models: config.models, maxImagesPerRequest: 4 };
  it('takes size, n and steps where the mapping can put them, with the model\'s defaults', () => {
    expect(jobParameters({ prompt: 'x' }, local, bounds, 'generate')).toEqual({ n: 1, outputFormat: 'png', width: 1024, height: 1024 });
    expect(jobParameters({ prompt: 'x', size: '512x768', n: 2, steps: 30 }, local, bounds, 'generate')).toEqual({ n: 2, outputFormat: 'png', width: 512, height: 768, steps: 30 });
    expect(jobParameters({ prompt: 'x', size: '1024x1024', quality: 'high' }, { backend: 'openai', model: 'gpt-image-1' }, bounds, 'generate')).toEqual({ n: 1, size: '1024x1024', outputFormat: 'png' });
  });

  it('refuses what the model cannot do, naming the parameter', () => {
    const refuse = (request: Parameters<typeof jobParameters>[0], candidate = local, kind: 'generate' | 'edit' = 'generate') => {
      try { jobParameters(request, candidate, bounds, kind); } catch (err) { return { param: (err as { param: string }).param, message: (err as Error).message }; }
      return undefined;
    };
    expect(refuse({ prompt: 'x', size: '2048x1024' })).toMatchObject({ param: 'size', message: expect.stringContaining('from 16 to 1536') });
    expect(refuse({ prompt: 'x', size: '100x100' })).toMatchObject({ param: 'size', message: expect.stringContaining('multiples of 8') });
    expect(refuse({ prompt: 'x', size: '512x512' }, { backend: 'comfyui', model: 'fixed' })).toMatchObject({ param: 'size', message: expect.stringContaining('fixed size') });
    expect(refuse({ prompt: 'x', n: 2 }, { backend: 'comfyui', model: 'fixed' })).toMatchObject({ param: 'n' });
    expect(refuse({ prompt: 'x', n: 5 })).toMatchObject({ param: 'n', message: expect.stringContaining('at most 4') });
    expect(refuse({ prompt: 'x', steps: 81 })).toMatchObject({ param: 'steps' });
    expect(refuse({ prompt: 'x', output_format: 'jpeg' })).toMatchObject({ param: 'output_format' });
    expect(refuse({ prompt: 'x' }, { backend: 'comfyui', model: 'img2img' })).toMatchObject({ param: 'model', message: expect.stringContaining('/v1/images/edits') });
    expect(refuse({ prompt: 'x', images: [{ file_id: 'img_x' }] }, local, 'edit')).toMatchObject({ param: 'model' });
    expect(refuse({ prompt: 'x', images: [{ file_id: 'img_x' }], mask: { file_id: 'img_y' } }, { backend: 'comfyui', model: 'img2img' }, 'edit')).toMatchObject({ param: 'mask' });
    expect(refuse({ prompt: 'x', images: [{ file_id: 'img_x' }] }, { backend: 'comfyui', model: 'inpaint' }, 'edit')).toMatchObject({ param: 'mask' });
    expect(refuse({ prompt: 'x', images: [{ file_id: 'img_x' }] }, { backend: 'comfyui', model: 'img2img' }, 'edit')).toBeUndefined();
  });
});
