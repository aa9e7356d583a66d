import { describe, expect, it } from 'vitest';
import { generateRequestFromInternal, toOllamaGenerateRequest } from './backend-request.ts';
import { thrownGatewayError } from '../../testkit.ts';

// Legacy completions (OpenAI's completions reference) as Ollama's /api/generate (docs/api.md "Request (with suffix)", "Raw Mode").

describe('toOllamaGenerateRequest', () => {
  it('sends suffix for fill-in-the-middle, through the model template (not raw)', () => {
    expect(toOllamaGenerateRequest({ model: 'codellama:code', prompt: 'def compute_gcd(a, b):', suffix: '    return result', temperature: 0, max_tokens: 128 }, { stream: false }))
      .toEqual({ model: 'codellama:code', prompt: 'def compute_gcd(a, b):', suffix: '    return result', stream: false, options: { num_predict: 128, temperature: 0 } });
  });

  it('continues a plain prompt as written (raw), with stop, seed and the lab keep_alive', () => {
    expect(toOllamaGenerateRequest({ model: 'llama3.2', prompt: ['Once upon a time'], stop: '\n', seed: 7, top_p: 0.5 }, { stream: true, keepAlive: '10m' }))
      .toEqual({ model: 'llama3.2', prompt: 'Once upon a time', raw: true, stream: true, options: { stop: ['\n'], seed: 7, top_p: 0.5 }, keep_alive: '10m' });
  });

  it('refuses what Ollama cannot do, naming the field', () => {
    expect(thrownGatewayError(() => toOllamaGenerateRequest({ model: 'm', prompt: ['a', 'b'] }, { stream: false }))).toMatchObject({ code: 'invalid_request', param: 'prompt', message: expect.stringMatching(/one prompt per request/) });
    expect(thrownGatewayError(() => toOllamaGenerateRequest({ model: 'm', prompt: [1, 2, 3] }, { stream: false })).message).toMatch(/not as token ids/);
    expect(thrownGatewayError(() => toOllamaGenerateRequest({ model: 'm', prompt: 'x', n: 2 }, { stream: false })).param).toBe('n');
    expect(thrownGatewayError(() => toOllamaGenerateRequest({ model: 'm', prompt: 'x', best_of: 3 }, { stream: false })).param).toBe('best_of');
    expect(thrownGatewayError(() => toOllamaGenerateRequest({ model: 'm', prompt: 'x', echo: true }, { stream: false })).param).toBe('echo');
    expect(thrownGatewayError(() => toOllamaGenerateRequest({ model: 'm', prompt: 'x', logprobs: 2 }, { stream: false })).param).toBe('logprobs');
  });
});

describe('generateRequestFromInternal', () => {
  it("takes the completion form only, with the backend's model", () => {
    expect(generateRequestFromInternal({ form: 'completion', request: { model: 'coder', prompt: 'x', suffix: 'y' } }, { model: 'codellama:code', stream: true }))
      .toEqual({ model: 'codellama:code', prompt: 'x', suffix: 'y', stream: true });
    expect(() => generateRequestFromInternal({ form: 'chat', request: { model: 'm', messages: [] } }, { model: 'm', stream: true })).toThrow(TypeError);
  });
});
