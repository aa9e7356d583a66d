import { describe, expect, it } from 'vitest';
import { embedRequestToInternal } from './client-request.ts';

// Bodies follow Ollama's docs/api.md ("Generate Embeddings").

describe('embedRequestToInternal', () => {
  it('sends the input and dimensions; truncate, options and keep_alive have no OpenAI field', () => {
    expect(embedRequestToInternal({ model: 'all-minilm', input: ['Why is the sky blue?', 'Why is the grass green?'], dimensions: 256, truncate: false, options: { num_ctx: 512 }, keep_alive: '1m' }))
      .toEqual({ form: 'embeddings', request: { model: 'all-minilm', input: ['Why is the sky blue?', 'Why is the grass green?'], dimensions: 256 } });
    expect(embedRequestToInternal({ model: 'all-minilm', input: 'Why is the sky blue?' })).toEqual({ form: 'embeddings', request: { model: 'all-minilm', input: 'Why is the sky blue?' } });
  });

  it('leaves an empty input to the shortcut that answers no vectors', () => {
    for (const input of [undefined, '', []]) expect(() => embedRequestToInternal({ model: 'm', input })).toThrow(/input is empty/);
  });
});
