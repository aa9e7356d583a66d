import { describe, expect, it } from 'vitest';
import { embeddingsAnswerFromInternal } from './client-answer.ts';

describe('embeddingsAnswerFromInternal', () => {
  it('answers {embedding} with the one vector and nothing else', () => {
    const text = embeddingsAnswerFromInternal({ object: 'list', model: 'm', data: [{ object: 'embedding', index: 0, embedding: [0.5, 0.25] }], usage: { prompt_tokens: 3, total_tokens: 3 } });
    expect(text).toBe('{"embedding":[0.5,0.25]}');
  });
});
