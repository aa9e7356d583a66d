import { describe, expect, it } from 'vitest';
import { embedAnswerToInternal, fromOllamaEmbedResponse } from './backend-answer.ts';

describe('fromOllamaEmbedResponse', () => {
  it('returns the OpenAI list shape, as floats or base64', () => {
    const answer = { model: 'all-minilm', embeddings: [[0.010071029, -0.0017594862, 0.05007221], [-0.0098027075, 0.06042469, 0.025257962]], total_duration: 14143917, load_duration: 1019500, prompt_eval_count: 8 };
    const floats = fromOllamaEmbedResponse(answer, { model: 'all-minilm' });
    expect(floats).toEqual({
      object: 'list',
      model: 'all-minilm',
      data: [{ object: 'embedding', index: 0, embedding: answer.embeddings[0] }, { object: 'embedding', index: 1, embedding: answer.embeddings[1] }],
      usage: { prompt_tokens: 8, total_tokens: 8 },
    });
    const encoded = fromOllamaEmbedResponse(answer, { model: 'all-minilm', encoding_format: 'base64' });
    const decoded = new Float32Array(Uint8Array.from(Buffer.from(encoded.data[1]!.embedding as unknown as string, 'base64')).buffer);
    expect([...decoded]).toEqual([...new Float32Array(answer.embeddings[1]!)]);
  });
});

describe('embedAnswerToInternal', () => {
  it('gives floats and throws an error body as backend_error', () => {
    const internal = embedAnswerToInternal({ model: 'all-minilm', embeddings: [[0.5, 0.25]], prompt_eval_count: 3 }, { model: 'all-minilm' });
    expect(internal.data).toEqual([{ object: 'embedding', index: 0, embedding: [0.5, 0.25] }]);
    expect(() => embedAnswerToInternal({ error: 'input length exceeds the context length' }, { model: 'm' })).toThrow(/ollama: input length exceeds/);
  });
});
