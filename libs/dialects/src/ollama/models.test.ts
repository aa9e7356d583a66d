import { describe, expect, it } from 'vitest';
import type { GatewayError } from '@homelab/bus';
import { capabilitiesOf, catalogIdForOllamaName, ollamaModelName, ollamaPs, ollamaShow, ollamaTags, ollamaVersion, type CatalogEntry } from './models.ts';

// The lab's catalog as the router's GET /v1/models lists it (services/router/src/catalog.ts).
const catalog: CatalogEntry[] = [
  { id: 'Qwen/Qwen2.5-7B-Instruct', object: 'model', created: 1_759_226_400, owned_by: 'vllm', max_model_len: 32768 },
  { id: 'llama3.2:3b', object: 'model', created: 1_759_226_400, owned_by: 'ollama', loaded: true },
  { id: 'nomic-embed-text:latest', object: 'model', created: 1_759_226_400, owned_by: 'ollama', loaded: false },
  { id: 'gpt-4o-mini', object: 'model', created: 1_759_226_400, owned_by: 'openai' },
  { id: 'claude-sonnet-4-5', object: 'model', created: 1_759_226_400, owned_by: 'anthropic' },
  { id: 'smart', object: 'model', created: 1_759_226_400, owned_by: 'vllm', alias_of: ['vllm/*', 'anthropic/claude-sonnet-4-5'] },
];

describe('model names', () => {
  it('lists names with a tag, as Ollama clients expect, and maps them back to the catalog', () => {
    expect(ollamaModelName('smart')).toBe('smart:latest');
    expect(ollamaModelName('llama3.2:3b')).toBe('llama3.2:3b');
    const ids = catalog.map((e) => e.id);
    expect(catalogIdForOllamaName('smart:latest', ids)).toBe('smart');
    expect(catalogIdForOllamaName('smart', ids)).toBe('smart');
    expect(catalogIdForOllamaName('nomic-embed-text', ids)).toBe('nomic-embed-text:latest');
    expect(catalogIdForOllamaName('Qwen/Qwen2.5-7B-Instruct:latest', ids)).toBe('Qwen/Qwen2.5-7B-Instruct');
    expect(catalogIdForOllamaName('mistral:latest', ids)).toBeUndefined();
  });
});

describe('ollamaTags', () => {
  it("lists every model of the lab, aliases included, in Ollama's shape", () => {
    const { models } = ollamaTags(catalog);
    expect(models.map((m) => m.name)).toEqual(['Qwen/Qwen2.5-7B-Instruct:latest', 'llama3.2:3b', 'nomic-embed-text:latest', 'gpt-4o-mini:latest', 'claude-sonnet-4-5:latest', 'smart:latest']);
    expect(models[1]).toEqual({
      name: 'llama3.2:3b', model: 'llama3.2:3b', modified_at: '2025-09-30T10:00:00.000Z', size: 0, digest: expect.stringMatching(/^[0-9a-f]{64}$/),
      details: { parent_model: '', format: 'gguf', family: 'llama', families: ['llama'], parameter_size: '3B', quantization_level: '' },
    });
    expect(models[0]!.details).toEqual({ parent_model: '', format: '', family: 'qwen', families: ['qwen'], parameter_size: '7B', quantization_level: '' });
    expect(models[5]!.details.parent_model).toBe('vllm/*');
    expect(models[4]!.details.family).toBe('claude');
  });

  it("uses an Ollama node's own facts where the catalog carries them", () => {
    const details = { parent_model: '', format: 'gguf', family: 'qwen2', families: ['qwen2'], parameter_size: '7.6B', quantization_level: 'Q4_K_M' };
    const [model] = ollamaTags([{ id: 'deepseek-r1:latest', owned_by: 'ollama', size: 4683075271, digest: '0a8c2669', modified_at: '2025-05-10T08:06:48.639712648-07:00', details }]).models;
    expect(model).toEqual({ name: 'deepseek-r1:latest', model: 'deepseek-r1:latest', modified_at: '2025-05-10T08:06:48.639712648-07:00', size: 4683075271, digest: '0a8c2669', details });
  });
});

describe('ollamaShow', () => {
  it('shows details, model_info and capabilities of a model named as a client names it', () => {
    expect(ollamaShow(catalog, { model: 'Qwen/Qwen2.5-7B-Instruct:latest' })).toEqual({
      details: { parent_model: '', format: '', family: 'qwen', families: ['qwen'], parameter_size: '7B', quantization_level: '' },
      model_info: { 'general.architecture': 'qwen', 'general.basename': 'Qwen2.5-7B-Instruct', 'qwen.context_length': 32768 },
      capabilities: ['completion'],
      modified_at: '2025-09-30T10:00:00.000Z',
    });
    expect(ollamaShow(catalog, { name: 'nomic-embed-text' }).capabilities).toEqual(['embedding']);
    expect(ollamaShow(catalog, { model: 'gpt-4o-mini' }).capabilities).toEqual(['completion', 'tools', 'vision']);
    expect(ollamaShow(catalog, { model: 'claude-sonnet-4-5:latest' }).capabilities).toEqual(['completion', 'tools', 'vision', 'thinking']);
    expect(ollamaShow([{ id: 'coder', owned_by: 'ollama', capabilities: ['completion', 'insert', 'bogus'] }], { model: 'coder' }).capabilities).toEqual(['completion', 'insert']);
  });

  it("refuses in Ollama's words: 400 model is required, 404 model '…' not found", () => {
    const missing = (() => { try { ollamaShow(catalog, {}); } catch (err) { return err; } })() as GatewayError;
    expect(missing).toMatchObject({ status: 400, message: 'model is required' });
    const unknown = (() => { try { ollamaShow(catalog, { model: 'mistral' }); } catch (err) { return err; } })() as GatewayError;
    expect(unknown).toMatchObject({ status: 404, code: 'model_not_found', message: "model 'mistral' not found" });
  });
});

describe('ollamaPs', () => {
  it("lists Ollama's loaded models and vLLM's (resident for as long as vLLM runs), not cloud models or aliases", () => {
    const { models } = ollamaPs(catalog);
    expect(models.map((m) => m.name)).toEqual(['Qwen/Qwen2.5-7B-Instruct:latest', 'llama3.2:3b']);
    expect(models[0]).toMatchObject({ size: 0, size_vram: 0, context_length: 32768, digest: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(Date.parse(models[0]!.expires_at) - Date.now()).toBeGreaterThan(200 * 365 * 86_400_000);
    expect(ollamaPs([{ id: 'llama3.2:3b', owned_by: 'ollama', loaded: true, expires_at: '2024-06-04T14:38:31.83753-07:00' }]).models[0]!.expires_at).toBe('2024-06-04T14:38:31.83753-07:00');
  });
});

describe('capabilitiesOf and ollamaVersion', () => {
  it('knows what the name tells and reports the API version followed', () => {
    expect(capabilitiesOf({ id: 'o3-mini', owned_by: 'openai' })).toEqual(['completion', 'tools', 'vision', 'thinking']);
    expect(capabilitiesOf({ id: 'BAAI/bge-m3', owned_by: 'vllm' })).toEqual(['embedding']);
    expect(ollamaVersion()).toEqual({ version: '0.12.3' });
  });
});
