import { describe, expect, it } from 'vitest';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { OllamaChatRequestSchema } from './chat/schema.ts';
import { OllamaEmbedRequestSchema } from './embed/schema.ts';
import { OllamaEmbeddingsRequestSchema } from './embeddings/schema.ts';
import { OllamaGenerateRequestSchema } from './generate/schema.ts';

// The router validates with compiled TypeBox schemas (libs/bus); what Go's decoder rejects must fail, unknown fields must pass.
const chat = TypeCompiler.Compile(OllamaChatRequestSchema);
const generate = TypeCompiler.Compile(OllamaGenerateRequestSchema);
const embed = TypeCompiler.Compile(OllamaEmbedRequestSchema);
const embeddings = TypeCompiler.Compile(OllamaEmbeddingsRequestSchema);

describe('Ollama request schemas', () => {
  it('take the documented requests and fields the gateway does not know', () => {
    expect(chat.Check({
      model: 'llama3.2', messages: [{ role: 'user', content: 'hi', images: ['aGk='] }, { role: 'assistant', content: '', tool_calls: [{ function: { name: 'f', arguments: { a: 1 } } }] }, { role: 'tool', content: '1', tool_name: 'f' }],
      tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: {} } } }],
      format: { type: 'object' }, options: { num_ctx: 8192, temperature: 0 }, stream: false, keep_alive: '5m', think: 'high', x_future: true,
    })).toBe(true);
    expect(chat.Check({ model: 'llama3.2' })).toBe(true);
    expect(generate.Check({ model: 'codellama:code', prompt: 'def f(', suffix: ')', raw: false, context: [1, 2], images: [], keep_alive: -1, think: true, format: 'json' })).toBe(true);
    expect(embed.Check({ model: 'all-minilm', input: ['a', 'b'], truncate: false, dimensions: 256, keep_alive: 0 })).toBe(true);
    expect(embeddings.Check({ model: 'all-minilm', prompt: 'x', options: {} })).toBe(true);
  });

  it('refuse what Ollama refuses: wrong types and no model', () => {
    expect(chat.Check({ model: '', messages: [] })).toBe(false);
    expect(chat.Check({ messages: [] })).toBe(false);
    expect(chat.Check({ model: 'm', messages: 'hi' })).toBe(false);
    expect(chat.Check({ model: 'm', stream: 'yes' })).toBe(false);
    expect(chat.Check({ model: 'm', messages: [{ content: 'no role' }] })).toBe(false);
    expect(chat.Check({ model: 'm', messages: [{ role: 'assistant', tool_calls: [{ function: { name: 'f', arguments: '{"a":1}' } }] }] })).toBe(false);
    expect(chat.Check({ model: 'm', think: 'extreme' })).toBe(false);
    expect(chat.Check({ model: 'm', keep_alive: true })).toBe(false);
    expect(generate.Check({ model: 'm', prompt: 1 })).toBe(false);
    expect(generate.Check({ model: 'm', context: ['a'] })).toBe(false);
    expect(embed.Check({ model: 'm', input: [1, 2] })).toBe(false);
    expect(embeddings.Check({ model: 'm', prompt: ['x'] })).toBe(false);
  });
});
