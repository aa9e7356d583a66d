import { describe, expect, it } from 'vitest';
import type { InternalRequest } from '../../types.ts';
import { completionNotSupported, generateRequestToInternal } from './client-request.ts';
import { thrownGatewayError } from '../../testkit.ts';

// Request bodies follow Ollama's docs/api.md ("Generate a completion": with suffix, raw mode, images, options).

const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==';

describe('generateRequestToInternal', () => {
  it('sends a plain prompt as a one-turn chat, with the system prompt and images', () => {
    const internal = generateRequestToInternal({ model: 'llava', prompt: 'What is in this picture?', system: 'Be brief.', images: [PNG], options: { temperature: 0.2, num_predict: 50 } });
    expect(internal).toEqual<InternalRequest>({
      form: 'chat',
      request: {
        model: 'llava', stream: true, temperature: 0.2, max_tokens: 50,
        messages: [
          { role: 'system', content: 'Be brief.' },
          { role: 'user', content: [{ type: 'text', text: 'What is in this picture?' }, { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } }] },
        ],
      },
    });
  });

  it('maps format and think; template and context are dropped', () => {
    const internal = generateRequestToInternal({ model: 'qwen3', prompt: 'Why?', format: 'json', think: 'high', template: '{{ .Prompt }}', context: [1, 2, 3], stream: false });
    expect(internal).toEqual({ form: 'chat', request: { model: 'qwen3', stream: false, messages: [{ role: 'user', content: 'Why?' }], response_format: { type: 'json_object' }, reasoning_effort: 'high' } });
  });

  it('sends suffix (fill-in-the-middle) as a text completion with prompt and suffix, and no token limit unless asked', () => {
    const internal = generateRequestToInternal({ model: 'codellama:code', prompt: 'def compute_gcd(a, b):', suffix: '    return result', options: { temperature: 0 }, stream: false });
    expect(internal).toEqual({ form: 'completion', request: { model: 'codellama:code', prompt: 'def compute_gcd(a, b):', suffix: '    return result', temperature: 0, stream: false, max_tokens: null } });
  });

  it('sends raw prompts as a text completion, and refuses raw with a template, a system prompt or a context as Ollama does', () => {
    const internal = generateRequestToInternal({ model: 'mistral', prompt: '[INST] why is the sky blue? [/INST]', raw: true, options: { num_predict: 64, stop: ['[INST]'] } });
    expect(internal).toEqual({ form: 'completion', request: { model: 'mistral', prompt: '[INST] why is the sky blue? [/INST]', stream: true, max_tokens: 64, stop: ['[INST]'] } });
    expect(thrownGatewayError(() => generateRequestToInternal({ model: 'mistral', prompt: 'x', raw: true, system: 'be brief' }))).toMatchObject({
      code: 'invalid_request', message: 'raw mode does not support template, system, or context',
    });
  });

  it('refuses what a text completion cannot carry, naming the field', () => {
    expect(thrownGatewayError(() => generateRequestToInternal({ model: 'm', prompt: 'x', suffix: 'y', images: [PNG] }))).toMatchObject({ param: 'images', message: expect.stringMatching(/suffix/) });
    expect(thrownGatewayError(() => generateRequestToInternal({ model: 'm', prompt: 'x', raw: true, format: 'json' }))).toMatchObject({ param: 'format', message: expect.stringMatching(/raw/) });
  });

  it('leaves an empty prompt to the load shortcut', () => {
    expect(thrownGatewayError(() => generateRequestToInternal({ model: 'm' }))).toMatchObject({ code: 'invalid_request', param: 'prompt' });
  });

  it('names the backend when it has no text completions', () => {
    expect(completionNotSupported('anthropic', 'suffix')).toMatchObject({
      code: 'unsupported', status: 400, param: 'suffix',
      message: "'suffix' needs fill-in-the-middle text completions, which anthropic does not offer: ask for a model served by Ollama",
    });
  });
});
