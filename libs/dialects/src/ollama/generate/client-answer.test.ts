import { describe, expect, it } from 'vitest';
import { GatewayError } from '@homelab/bus';
import type { ChatChunk, Completion } from '../../types.ts';
import { generateAnswerFromInternal, OllamaGenerateEncoder } from './client-answer.ts';

// The expected lines follow Ollama's docs/api.md ("Generate request (Streaming)", "Request (with suffix)").

const context = { requestId: 'r1', model: 'Qwen/Qwen2.5-Coder-7B', requestedModel: 'coder:latest', created: 1, includeUsage: false };

function textChunk(text: string, finish: 'stop' | 'length' | null = null): Completion {
  return { id: 'cmpl-1', object: 'text_completion', created: 1, model: 'Qwen/Qwen2.5-Coder-7B', choices: [{ index: 0, text, finish_reason: finish as 'stop', logprobs: null }] };
}

function chatChunk(delta: Record<string, unknown>, finish: string | null = null): ChatChunk {
  return { id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta, finish_reason: finish as 'stop', logprobs: null }] };
}

function linesOf(text: string): Record<string, unknown>[] {
  return text.trimEnd().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe('OllamaGenerateEncoder', () => {
  it('writes text completion chunks as response lines, then the final line (without context)', () => {
    const encoder = new OllamaGenerateEncoder(context);
    const usage: Completion = { ...textChunk(''), choices: [], usage: { prompt_tokens: 17, completion_tokens: 2, total_tokens: 19 } };
    const text = [textChunk('\n  if a'), textChunk(' == 0:'), textChunk('', 'length'), usage].map((c) => encoder.push(c)).join('') + encoder.end();
    const lines = linesOf(text);
    expect(lines.slice(0, 2)).toEqual([
      { model: 'coder:latest', created_at: expect.any(String), response: '\n  if a', done: false },
      { model: 'coder:latest', created_at: expect.any(String), response: ' == 0:', done: false },
    ]);
    expect(lines[2]).toEqual({
      model: 'coder:latest', created_at: expect.any(String), response: '', done: true, done_reason: 'length',
      total_duration: expect.any(Number), prompt_eval_count: 17, prompt_eval_duration: expect.any(Number), eval_count: 2, eval_duration: expect.any(Number),
    });
    expect(Object.keys(lines[2]!)).toEqual(['model', 'created_at', 'response', 'done', 'done_reason', 'total_duration', 'prompt_eval_count', 'prompt_eval_duration', 'eval_count', 'eval_duration']);
  });

  it('writes chat chunks as response lines, reasoning as thinking', () => {
    const encoder = new OllamaGenerateEncoder(context);
    const text = [chatChunk({ role: 'assistant', content: '' }), chatChunk({ reasoning_content: 'Hmm.' }), chatChunk({ content: 'Blue.' }), chatChunk({}, 'stop')].map((c) => encoder.push(c)).join('') + encoder.end();
    expect(linesOf(text).map(({ response, thinking, done }) => ({ response, thinking, done }))).toEqual([
      { response: '', thinking: 'Hmm.', done: false },
      { response: 'Blue.', thinking: undefined, done: false },
      { response: '', thinking: undefined, done: true },
    ]);
  });

  it('fails with an error line and writes nothing after it', () => {
    const encoder = new OllamaGenerateEncoder(context);
    encoder.push(textChunk('x'));
    expect(encoder.fail(new GatewayError('timeout', 'the backend did not answer in time'))).toBe('{"error":"the backend did not answer in time"}\n');
    expect(encoder.end()).toBe('');
  });
});

describe('generateAnswerFromInternal', () => {
  it('answers a whole text completion in the documented shape', () => {
    const answer: Completion = { ...textChunk('\n  if a == 0:\n    return b', 'stop'), usage: { prompt_tokens: 17, completion_tokens: 63, total_tokens: 80 } };
    expect(JSON.parse(generateAnswerFromInternal(answer, context))).toEqual({
      model: 'coder:latest', created_at: expect.any(String), response: '\n  if a == 0:\n    return b', done: true, done_reason: 'stop', prompt_eval_count: 17, eval_count: 63,
    });
  });

  it('answers a whole chat with thinking', () => {
    const answer = {
      id: 'c', object: 'chat.completion' as const, created: 1, model: 'm',
      choices: [{ index: 0, finish_reason: 'stop' as const, logprobs: null, message: { role: 'assistant' as const, content: 'Blue.', refusal: null, reasoning_content: 'Rayleigh.' } }],
    };
    expect(JSON.parse(generateAnswerFromInternal(answer, { ...context, startedAt: Date.now() }))).toMatchObject({ response: 'Blue.', thinking: 'Rayleigh.', done: true, total_duration: expect.any(Number) });
  });
});
