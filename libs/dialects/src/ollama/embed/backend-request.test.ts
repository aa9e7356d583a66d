import { describe, expect, it } from 'vitest';
import { embedRequestFromInternal, toOllamaEmbedRequest } from './backend-request.ts';
import { expectGatewayError } from '../../testkit.ts';

describe('toOllamaEmbedRequest', () => {
  it('builds /api/embed bodies for text inputs only', () => {
    expect(toOllamaEmbedRequest({ model: 'all-minilm', input: 'Why is the sky blue?' })).toEqual({ model: 'all-minilm', input: 'Why is the sky blue?' });
    expect(toOllamaEmbedRequest({ model: 'all-minilm', input: ['Why is the sky blue?', 'Why is the grass green?'], dimensions: 256 }, '10m'))
      .toEqual({ model: 'all-minilm', input: ['Why is the sky blue?', 'Why is the grass green?'], dimensions: 256, keep_alive: '10m' });
    expectGatewayError(() => toOllamaEmbedRequest({ model: 'all-minilm', input: [1, 2, 3] }), 'invalid_request', /string/);
  });

  it('is requestFromInternal for the embeddings form, with the lab keep_alive default', () => {
    expect(embedRequestFromInternal({ form: 'embeddings', request: { model: 'nomic', input: 'x' } }, { model: 'nomic-embed-text:latest', stream: false, defaults: { keep_alive: -1 } }))
      .toEqual({ model: 'nomic-embed-text:latest', input: 'x', keep_alive: -1 });
    expect(() => embedRequestFromInternal({ form: 'chat', request: { model: 'm', messages: [] } }, { model: 'm', stream: false })).toThrow(TypeError);
  });
});
