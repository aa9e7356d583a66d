import { describe, expect, it } from 'vitest';
import { embeddingsRequestToInternal } from './client-request.ts';

describe('embeddingsRequestToInternal', () => {
  it('embeds the one prompt; options and keep_alive are dropped', () => {
    expect(embeddingsRequestToInternal({ model: 'all-minilm', prompt: 'Here is an article about llamas...', options: { temperature: 0 }, keep_alive: '5m' }))
      .toEqual({ form: 'embeddings', request: { model: 'all-minilm', input: 'Here is an article about llamas...' } });
    expect(() => embeddingsRequestToInternal({ model: 'm', prompt: '' })).toThrow(/prompt is empty/);
  });
});
