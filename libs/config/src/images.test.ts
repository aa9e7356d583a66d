import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseConfig } from './index.ts';

const lab = (images: string): string => `
nodes:
  ai-node:
    address: 127.0.0.1
    services:
      comfyui: { kind: comfyui, port: 8188 }
images:
${images}
`;

describe('images config', () => {
  it('the seed lab serves ComfyUI on the ai-node, with workflows next to the config file', () => {
    const cfg = loadConfig({ env: {} });
    expect(cfg.images.comfyui).toMatchObject({ url: 'http://192.168.1.7:8188', concurrency: 1 });
    expect(cfg.images.models['sdxl']).toMatchObject({ kind: 'text-to-image', workflowFile: expect.stringMatching(/config\/workflows\/sdxl-text-to-image\.json$/) });
    expect(cfg.images.models['sd15-img2img']!.kind).toBe('image-to-image');
    expect(cfg.images.models['sd15-inpaint']!.kind).toBe('inpainting');
    expect(cfg.images.aliases['image']).toEqual(['comfyui/sdxl', 'openai/gpt-image-1']);
  });

  it('COMFYUI_URL overrides the address, as the other backends\' *_URL do', () => {
    expect(loadConfig({ env: { COMFYUI_URL: 'http://127.0.0.1:18188/' } }).images.comfyui?.url).toBe('http://127.0.0.1:18188');
    const cfg = loadConfig({ env: { COMFYUI_URL: '' } });
    expect(cfg.images.comfyui).toBeUndefined();
    expect(cfg.notConfigured).toContainEqual({ area: 'inference', message: 'comfyui: ai-node/comfyui has no address (COMFYUI_URL)' });
  });

  it('applies defaults and resolves a relative workflow path against the config file', () => {
    const cfg = parseConfig(lab('  models:\n    m1: { workflow: flows/a.json, mapping: { prompt: 6.text, image: 1.image } }'), '/etc/homelab/lab.yaml');
    expect(cfg.images.models['m1']).toMatchObject({ workflowFile: '/etc/homelab/flows/a.json', kind: 'image-to-image', maxSide: 2048, maxSteps: 150, defaults: {} });
    expect(cfg.images.jobs).toEqual({ maxAttempts: 3, ackWaitMs: 30_000, keepHours: 72, waitTimeoutMs: 900_000, finishOnHangup: true });
    expect(cfg.images.files).toMatchObject({ ttlHours: 24, urlTtlSeconds: 3600 });
  });

  it('rejects a mapping that is not `<node>.<input>`, and a mask without an input image', () => {
    expect(() => parseConfig(lab('  models:\n    m1: { workflow: a.json, mapping: { prompt: text } }'), 'lab.yaml')).toThrowError(/^lab\.yaml: images\.models\.m1\.mapping\.prompt: /);
    expect(() => parseConfig(lab('  models:\n    m1: { workflow: a.json, mapping: { prompt: 6.text, mask: 2.image } }'), 'lab.yaml'))
      .toThrowError(new ConfigError('lab.yaml', 'images.models.m1.mapping.mask', 'a mask needs an input image (mapping.image) too'));
    expect(() => parseConfig(lab('  models:\n    m1: { workflow: a.json, mapping: { prompt: 6.text, promt: 7.text } }'), 'lab.yaml')).toThrowError(/images\.models\.m1\.mapping\.promt: unknown key/);
  });

  it('rejects an alias naming a model that does not exist', () => {
    expect(() => parseConfig(lab('  models:\n    m1: { workflow: a.json, mapping: { prompt: 6.text } }\n  aliases:\n    pic: [comfyui/m2]'), 'lab.yaml'))
      .toThrowError(new ConfigError('lab.yaml', 'images.aliases.pic', "no image model 'm2' in images.models"));
    expect(() => parseConfig(lab('  aliases:\n    pic: [vllm/x]'), 'lab.yaml')).toThrowError(/images\.aliases\.pic\.0: /);
  });
});
