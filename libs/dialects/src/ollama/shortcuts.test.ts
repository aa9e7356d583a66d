import { describe, expect, it } from 'vitest';
import { keepAliveSeconds, ollamaChatShortcut, ollamaEmbeddingsShortcut, ollamaEmbedShortcut, ollamaGenerateShortcut } from './shortcuts.ts';

// What Ollama (server/routes.go, v0.12) answers without running a model; docs/api.md "Load a model", "Unload a model".

describe('keepAliveSeconds', () => {
  it('reads numbers as seconds and strings as Go durations', () => {
    expect([keepAliveSeconds(0), keepAliveSeconds(-1), keepAliveSeconds('0'), keepAliveSeconds('5m'), keepAliveSeconds('1h30m'), keepAliveSeconds('500ms'), keepAliveSeconds('-1s')]).toEqual([0, -1, 0, 300, 5400, 0.5, -1]);
    expect([keepAliveSeconds('soon'), keepAliveSeconds(undefined), keepAliveSeconds(null)]).toEqual([undefined, undefined, undefined]);
  });
});

describe('load and unload shortcuts', () => {
  it('/api/generate: an empty prompt loads, with keep_alive 0 unloads', () => {
    expect(JSON.parse(ollamaGenerateShortcut({ model: 'llama3.2' })!)).toEqual({ model: 'llama3.2', created_at: expect.any(String), response: '', done: true, done_reason: 'load' });
    expect(JSON.parse(ollamaGenerateShortcut({ model: 'llama3.2', prompt: '', keep_alive: 0 })!)).toMatchObject({ done_reason: 'unload' });
    // Open WebUI's unload button sends exactly this.
    expect(JSON.parse(ollamaGenerateShortcut({ model: 'llama3.2:latest', keep_alive: 0, prompt: '' })!)).toMatchObject({ model: 'llama3.2:latest', done: true, done_reason: 'unload' });
    expect(JSON.parse(ollamaGenerateShortcut({ model: 'llama3.2', keep_alive: '500ms' })!)).toMatchObject({ done_reason: 'load' });
    expect(ollamaGenerateShortcut({ model: 'llama3.2', prompt: 'Why?' })).toBeUndefined();
  });

  it('/api/chat: no messages loads; keep_alive under a second unloads (Ollama compares whole seconds)', () => {
    expect(JSON.parse(ollamaChatShortcut({ model: 'llama3.2', messages: [] })!)).toEqual({ model: 'llama3.2', created_at: expect.any(String), message: { role: 'assistant', content: '' }, done: true, done_reason: 'load' });
    expect(JSON.parse(ollamaChatShortcut({ model: 'llama3.2', keep_alive: '500ms' })!)).toMatchObject({ done_reason: 'unload' });
    expect(JSON.parse(ollamaChatShortcut({ model: 'llama3.2', keep_alive: -1 })!)).toMatchObject({ done_reason: 'load' });
    expect(ollamaChatShortcut({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] })).toBeUndefined();
  });

  it('/api/embed and /api/embeddings: nothing to embed answers no vectors', () => {
    expect(ollamaEmbedShortcut({ model: 'all-minilm', input: [] })).toBe('{"model":"all-minilm","embeddings":[]}');
    expect(ollamaEmbedShortcut({ model: 'all-minilm' })).toBe('{"model":"all-minilm","embeddings":[]}');
    expect(ollamaEmbedShortcut({ model: 'all-minilm', input: 'x' })).toBeUndefined();
    expect(ollamaEmbeddingsShortcut({ prompt: '' })).toBe('{"embedding":[]}');
    expect(ollamaEmbeddingsShortcut({ prompt: 'x' })).toBeUndefined();
  });
});
