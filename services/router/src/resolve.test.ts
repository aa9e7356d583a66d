import { describe, expect, it } from 'vitest';
import type { GatewayError } from '@homelab/bus';
import { canonicalModelName, resolveModel, type ModelView, type Provider } from './resolve.ts';

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

describe('canonicalModelName: Ollama clients tag every name with :latest', () => {
  it('an alias, a vLLM model and a cloud model asked for with :latest are the lab\'s names', () => {
    expect(canonicalModelName('smart:latest', config, view)).toBe('smart');
    expect(canonicalModelName('Qwen/Qwen2.5-7B-Instruct:latest', config, view)).toBe('Qwen/Qwen2.5-7B-Instruct');
    expect(canonicalModelName('gpt-5.4-mini:latest', config, view)).toBe('gpt-5.4-mini');
    expect(canonicalModelName('claude-opus-5-5:latest', config, view)).toBe('claude-opus-5-5');
    expect(canonicalModelName('vllm/Qwen/Qwen2.5-7B-Instruct:latest', config, view)).toBe('vllm/Qwen/Qwen2.5-7B-Instruct');
  });
  it('Ollama\'s own tagged names, untagged names and unknown names stay as they are', () => {
    expect(canonicalModelName('llama3.2:latest', config, view)).toBe('llama3.2:latest');
    expect(canonicalModelName('ollama/mistral:latest', config, view)).toBe('ollama/mistral:latest');
    expect(canonicalModelName('smart', config, view)).toBe('smart');
    expect(canonicalModelName('qwen2.5:7b', config, view)).toBe('qwen2.5:7b');
    expect(canonicalModelName('mystery:latest', config, view)).toBe('mystery:latest');
  });
  it('an alias named with its tag wins over the untagged one', () => {
    const tagged = { backends, aliases: { 'fast:latest': ['ollama/qwen2.5:7b'], fast: ['vllm/*'] } } as never;
    expect(canonicalModelName('fast:latest', tagged, view)).toBe('fast:latest');
  });
});
