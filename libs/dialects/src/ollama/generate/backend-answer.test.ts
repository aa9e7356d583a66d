import { describe, expect, it } from 'vitest';
import type { Completion } from '../../types.ts';
import { fromOllamaGenerateResponse, generateAnswerToInternal, OllamaGenerateDecoder } from './backend-answer.ts';

// Lines follow Ollama's docs/api.md ("Generate request (Streaming)", "Request (with suffix)").

const stream = [
  { model: 'codellama:code', created_at: '2024-07-22T20:47:51.147561Z', response: '\n  if a', done: false },
  { model: 'codellama:code', created_at: '2024-07-22T20:47:51.147561Z', response: '', thinking: 'hmm', done: false },
  { model: 'codellama:code', created_at: '2024-07-22T20:47:51.147561Z', response: ' == 0:', done: false },
  {
    model: 'codellama:code', created_at: '2024-07-22T20:47:51.147561Z', response: '', done: true, done_reason: 'stop', context: [1, 2, 3],
    total_duration: 1162761250, load_duration: 6683708, prompt_eval_count: 17, prompt_eval_duration: 201222000, eval_count: 63, eval_duration: 953997000,
  },
];

describe('OllamaGenerateDecoder', () => {
  it('turns /api/generate lines into text_completion chunks, a finish chunk and a usage chunk', () => {
    const decoder = new OllamaGenerateDecoder({ model: 'codellama:code' });
    const bytes = Buffer.from(stream.map((line) => JSON.stringify(line) + '\n').join(''));
    const chunks: Completion[] = [...decoder.push(bytes.subarray(0, 50)), ...decoder.push(bytes.subarray(50))];
    expect(chunks.map((c) => c.choices[0]?.text ?? null)).toEqual(['\n  if a', ' == 0:', '', null]);
    expect(chunks.map((c) => c.choices[0]?.finish_reason ?? null)).toEqual([null, null, 'stop', null]);
    expect(chunks[3]).toMatchObject({ object: 'text_completion', choices: [], usage: { prompt_tokens: 17, completion_tokens: 63, total_tokens: 80 } });
    expect(chunks.every((c) => c.id === chunks[0]!.id && c.id.startsWith('cmpl-') && c.model === 'codellama:code')).toBe(true);
    expect(decoder.complete).toBe(true);
    expect(decoder.loadMs).toBe(7);
  });

  it("ends at Ollama's error line, as backend_error", () => {
    const decoder = new OllamaGenerateDecoder({ model: 'm' });
    expect(decoder.push(Buffer.from('{"error":"llama runner process has terminated: exit status 2"}\n'))).toEqual([]);
    expect(decoder.error).toMatchObject({ code: 'backend_error', message: expect.stringMatching(/^ollama: llama runner process has terminated/) });
  });
});

describe('fromOllamaGenerateResponse', () => {
  it('turns the documented whole answer into a text_completion', () => {
    const { context: _context, ...whole } = { ...stream[3]!, response: '\n  if a == 0:\n    return b', done_reason: 'length' };
    expect(fromOllamaGenerateResponse(whole, 'codellama:code')).toEqual({
      id: expect.stringMatching(/^cmpl-/), object: 'text_completion', created: expect.any(Number), model: 'codellama:code',
      choices: [{ index: 0, text: '\n  if a == 0:\n    return b', logprobs: null, finish_reason: 'length' }],
      usage: { prompt_tokens: 17, completion_tokens: 63, total_tokens: 80 },
    });
    expect(() => generateAnswerToInternal({ error: 'unexpected EOF' }, { model: 'm' })).toThrow(/ollama: unexpected EOF/);
  });
});
