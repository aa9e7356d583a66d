import { describe, expect, it } from 'vitest';
import type { GatewayError } from '@homelab/bus';
import { resolveModel, type ModelView, type Provider } from './resolve.ts';

const backends = { vllm: {}, ollama: {}, openai: { models: ['gpt-5.4-mini'] }, anthropic: { models: ['claude-haiku-5-5'] } } as never;
const served: Partial<Record<Provider, { id: string; loaded?: boolean }[]>> = {
  vllm: [{ id: 'Qwen/Qwen2.5-7B-Instruct' }], ollama: [{ id: 'llama3.2:latest', loaded: false }, { id: 'qwen2.5:7b', loaded: true }],
};
const view: ModelView = { served: (p) => served[p] };
const config = { backends, aliases: { smart: ['vllm/*', 'ollama/qwen2.5:7b', 'anthropic/claude-haiku-5-5'], dead: ['openai/x'] } } as never;

describe('resolveModel', () => {
  it('explicit provider/model', () => {
    expect(resolveModel('ollama/llama3.2', config, view)).toMatchObject({ candidates: [{ provider: 'ollama', model: 'llama3.2' }], reason: 'explicit:ollama' });
    expect(resolveModel('vllm/Qwen/Qwen2.5-7B-Instruct', config, view).candidates[0]).toEqual({ provider: 'vllm', model: 'Qwen/Qwen2.5-7B-Instruct' });
  });
  it('aliases, with vllm/* as what vLLM serves now', () => {
    expect(resolveModel('smart', config, view).candidates).toEqual([
      { provider: 'vllm', model: 'Qwen/Qwen2.5-7B-Instruct' }, { provider: 'ollama', model: 'qwen2.5:7b' }, { provider: 'anthropic', model: 'claude-haiku-5-5' },
    ]);
    const nothingServed = resolveModel('smart', config, { served: () => undefined });
    expect(nothingServed.skipped).toEqual(['vllm serves no model now']);
  });
  it('bare names by discovery, with Ollama\'s :latest', () => {
    expect(resolveModel('llama3.2', config, view)).toMatchObject({ candidates: [{ provider: 'ollama', model: 'llama3.2:latest' }], reason: 'discovered:ollama' });
    expect(resolveModel('qwen2.5:7b', config, view).reason).toBe('discovered:ollama (loaded)');
  });
  it('cloud by configured list or prefix', () => {
    expect(resolveModel('gpt-5.4-mini', config, view).reason).toBe('configured:openai');
    expect(resolveModel('o3-mini', config, view).reason).toBe('prefix:openai');
    expect(resolveModel('claude-opus-5-5', config, view).candidates).toEqual([{ provider: 'anthropic', model: 'claude-opus-5-5' }]);
  });
  it('unknown models and unconfigured providers are errors with the right codes', () => {
    expect(() => resolveModel('mystery', config, view)).toThrowError(expect.objectContaining({ code: 'model_not_found', status: 404 }) as GatewayError);
    const noCloud = { backends: { vllm: {} }, aliases: {} } as never;
    expect(() => resolveModel('gpt-5', noCloud, view)).toThrowError(/openai is not configured \(set OPENAI_API_KEY\)/);
    expect(() => resolveModel('anthropic/claude', noCloud, view)).toThrowError(expect.objectContaining({ code: 'no_backend' }) as GatewayError);
    expect(() => resolveModel('ollama/', config, view)).toThrowError(expect.objectContaining({ code: 'invalid_request' }) as GatewayError);
  });
});
