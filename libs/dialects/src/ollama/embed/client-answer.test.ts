import { describe, expect, it } from 'vitest';
import type { EmbeddingsResponse } from '../../types.ts';
import { embedAnswerFromInternal, embeddingVectors } from './client-answer.ts';

const context = { requestId: 'r', model: 'text-embedding-3-small', requestedModel: 'embedder:latest', created: 1, includeUsage: false };

const answer: EmbeddingsResponse = {
  object: 'list', model: 'text-embedding-3-small',
  data: [{ object: 'embedding', index: 1, embedding: [0.5, -0.25] }, { object: 'embedding', index: 0, embedding: [0.125, 1] }],
  usage: { prompt_tokens: 8, total_tokens: 8 },
};

describe('embedAnswerFromInternal', () => {
  it("answers Ollama's shape, vectors in input order, with the model asked for", () => {
    expect(JSON.parse(embedAnswerFromInternal(answer, context))).toEqual({ model: 'embedder:latest', embeddings: [[0.125, 1], [0.5, -0.25]], prompt_eval_count: 8 });
    expect(Object.keys(JSON.parse(embedAnswerFromInternal(answer, { ...context, startedAt: Date.now() })) as object)).toEqual(['model', 'embeddings', 'total_duration', 'prompt_eval_count']);
  });

  it('decodes base64 vectors', () => {
    const encoded = Buffer.from(new Float32Array([0.5, -0.25]).buffer).toString('base64');
    expect(embeddingVectors({ ...answer, data: [{ object: 'embedding', index: 0, embedding: encoded as unknown as number[] }] })).toEqual([[0.5, -0.25]]);
  });

  it('refuses another form', () => {
    expect(() => embedAnswerFromInternal({ id: 'x', object: 'text_completion', created: 1, model: 'm', choices: [] }, context)).toThrow(TypeError);
  });
});
