import { describe, expect, it } from 'vitest';
import { GatewayError } from '@homelab/bus';
import type { ChatChunk, ChatCompletion } from '../../types.ts';
import { chatAnswerFromInternal, OllamaChatEncoder } from './client-answer.ts';

// The expected lines follow Ollama's docs/api.md ("Chat request (Streaming)", "(Streaming with tools)") and api/types.go's field order.

const context = { requestId: 'r1', model: 'Qwen/Qwen2.5-7B-Instruct', requestedModel: 'smart:latest', created: 1_700_000_000, includeUsage: false };

function chunk(delta: Record<string, unknown>, finish: string | null = null, extra: Partial<ChatChunk> = {}): ChatChunk {
  return { id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: 'Qwen/Qwen2.5-7B-Instruct', choices: [{ index: 0, delta, finish_reason: finish as 'stop', logprobs: null }], ...extra };
}

const usageChunk: ChatChunk = { id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [], usage: { prompt_tokens: 26, completion_tokens: 2, total_tokens: 28 } };

function linesOf(text: string): Record<string, unknown>[] {
  expect(text.endsWith('\n')).toBe(true);
  return text.trimEnd().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
}

function encode(chunks: ChatChunk[]): Record<string, unknown>[] {
  const encoder = new OllamaChatEncoder(context);
  return linesOf(chunks.map((c) => encoder.push(c)).join('') + encoder.end());
}

describe('OllamaChatEncoder', () => {
  it('writes a line per piece of text and a final line with done_reason, counts and measured durations', () => {
    const lines = encode([chunk({ role: 'assistant', content: '' }), chunk({ content: 'The' }), chunk({ content: ' sky' }), chunk({}, 'stop'), usageChunk]);
    expect(lines).toHaveLength(3);
    expect(lines[0]).toEqual({ model: 'smart:latest', created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$/), message: { role: 'assistant', content: 'The' }, done: false });
    expect(Object.keys(lines[0]!)).toEqual(['model', 'created_at', 'message', 'done']);
    expect(lines[2]).toEqual({
      model: 'smart:latest', created_at: expect.any(String), message: { role: 'assistant', content: '' }, done: true, done_reason: 'stop',
      total_duration: expect.any(Number), prompt_eval_count: 26, prompt_eval_duration: expect.any(Number), eval_count: 2, eval_duration: expect.any(Number),
    });
    expect(Object.keys(lines[2]!)).toEqual(['model', 'created_at', 'message', 'done', 'done_reason', 'total_duration', 'prompt_eval_count', 'prompt_eval_duration', 'eval_count', 'eval_duration']);
    const final = lines[2] as { total_duration: number; prompt_eval_duration: number; eval_duration: number };
    expect(final.prompt_eval_duration + final.eval_duration).toBe(final.total_duration);
    expect(Number.isInteger(final.total_duration)).toBe(true);
  });

  it("maps 'length' and says 'stop' for everything else, as Ollama has no other reasons", () => {
    expect(encode([chunk({ content: 'The' }, 'length')]).at(-1)).toMatchObject({ done_reason: 'length' });
    expect(encode([chunk({ content: 'The' }, 'content_filter')]).at(-1)).toMatchObject({ done_reason: 'stop' });
    expect(encode([chunk({ content: 'The' })]).at(-1)).toMatchObject({ done_reason: 'stop' });
  });

  it('writes reasoning (reasoning_content, or vLLM’s newer reasoning) as thinking', () => {
    const lines = encode([chunk({ role: 'assistant', reasoning_content: 'Let me' }), chunk({ reasoning: ' think' }), chunk({ content: 'Blue.' }, 'stop')]);
    expect(lines.slice(0, 3).map((l) => l.message)).toEqual([
      { role: 'assistant', content: '', thinking: 'Let me' },
      { role: 'assistant', content: '', thinking: ' think' },
      { role: 'assistant', content: 'Blue.' },
    ]);
  });

  it('assembles streamed tool call pieces into one line of whole calls with object arguments', () => {
    const lines = encode([
      chunk({ role: 'assistant', content: '' }),
      chunk({ tool_calls: [{ index: 0, id: 'call_abc', type: 'function', function: { name: 'get_current_weather', arguments: '' } }] }),
      chunk({ tool_calls: [{ index: 0, function: { arguments: '{"location":' } }] }),
      chunk({ tool_calls: [{ index: 0, function: { arguments: '"Paris, FR","format":"celsius"}' } }] }),
      chunk({ tool_calls: [{ index: 1, id: 'call_def', type: 'function', function: { name: 'now', arguments: '' } }] }),
      chunk({}, 'tool_calls'),
      usageChunk,
    ]);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toEqual({
      model: 'smart:latest', created_at: expect.any(String), done: false,
      message: {
        role: 'assistant', content: '', tool_calls: [
          { id: 'call_abc', function: { index: 0, name: 'get_current_weather', arguments: { location: 'Paris, FR', format: 'celsius' } } },
          { id: 'call_def', function: { index: 1, name: 'now', arguments: {} } },
        ],
      },
    });
    expect(lines[1]).toMatchObject({ done: true, done_reason: 'stop' });
  });

  it('ends with an error line when the backend’s arguments are not a JSON object', () => {
    const encoder = new OllamaChatEncoder(context);
    encoder.push(chunk({ tool_calls: [{ index: 0, id: 'c', type: 'function', function: { name: 'f', arguments: '[1,2]' } }] }));
    const out = encoder.push(chunk({}, 'tool_calls'));
    expect(linesOf(out)).toEqual([{ error: "the backend's arguments for tool 'f' are not a JSON object, which Ollama's tool calls require" }]);
    expect(encoder.end()).toBe('');
  });

  it("fails with Ollama's in-stream error line and writes nothing after it", () => {
    const encoder = new OllamaChatEncoder(context);
    expect(linesOf(encoder.push(chunk({ content: 'The' })))).toHaveLength(1);
    expect(encoder.fail(new GatewayError('backend_error', 'vllm failed mid-stream: engine died'))).toBe('{"error":"vllm failed mid-stream: engine died"}\n');
    expect(encoder.push(chunk({ content: 'more' }))).toBe('');
    expect(encoder.end()).toBe('');
  });

  it("writes a refusal as the model's text, since Ollama has no refusal field", () => {
    expect(encode([chunk({ refusal: 'I cannot help with that.' }, 'stop')])[0]).toMatchObject({ message: { role: 'assistant', content: 'I cannot help with that.' } });
  });

  it('carries log probabilities as Ollama writes them', () => {
    const withLogprobs = chunk({ content: 'The' }, null, {
      choices: [{ index: 0, delta: { content: 'The' }, finish_reason: null, logprobs: { content: [{ token: 'The', logprob: -0.1, bytes: [84, 104, 101], top_logprobs: [{ token: 'The', logprob: -0.1, bytes: null }, { token: 'A', logprob: -2.3, bytes: null }] }], refusal: null } }],
    });
    expect(encode([withLogprobs])[0]).toMatchObject({ message: { content: 'The' }, logprobs: [{ token: 'The', logprob: -0.1, bytes: [84, 104, 101], top_logprobs: [{ token: 'The', logprob: -0.1 }, { token: 'A', logprob: -2.3 }] }] });
  });
});

describe('chatAnswerFromInternal', () => {
  const completion: ChatCompletion = {
    id: 'chatcmpl-1', object: 'chat.completion', created: 1, model: 'Qwen/Qwen2.5-7B-Instruct',
    choices: [{ index: 0, finish_reason: 'stop', logprobs: null, message: { role: 'assistant', content: 'Hello! How are you today?', refusal: null } }],
    usage: { prompt_tokens: 26, completion_tokens: 298, total_tokens: 324 },
  };

  it('answers the documented non-streaming shape; total_duration only when the start is known', () => {
    expect(JSON.parse(chatAnswerFromInternal(completion, context))).toEqual({
      model: 'smart:latest', created_at: expect.any(String), message: { role: 'assistant', content: 'Hello! How are you today?' }, done: true, done_reason: 'stop',
      prompt_eval_count: 26, eval_count: 298,
    });
    const timed = JSON.parse(chatAnswerFromInternal(completion, { ...context, startedAt: Date.now() - 1500 })) as { total_duration: number };
    expect(timed.total_duration).toBeGreaterThanOrEqual(1500e6);
  });

  it('answers tool calls with object arguments, thinking from reasoning_content, and done_reason stop', () => {
    const withTools = {
      ...completion,
      choices: [{
        index: 0, finish_reason: 'tool_calls' as const, logprobs: null,
        message: { role: 'assistant' as const, content: null, refusal: null, reasoning_content: 'The user wants weather.', tool_calls: [{ id: 'call_1', type: 'function' as const, function: { name: 'get_current_weather', arguments: '{"format":"celsius","location":"Paris, FR"}' } }] },
      }],
    };
    expect(JSON.parse(chatAnswerFromInternal(withTools, context))).toMatchObject({
      message: { role: 'assistant', content: '', thinking: 'The user wants weather.', tool_calls: [{ id: 'call_1', function: { index: 0, name: 'get_current_weather', arguments: { format: 'celsius', location: 'Paris, FR' } } }] },
      done_reason: 'stop',
    });
  });

  it('refuses an answer of another form', () => {
    expect(() => chatAnswerFromInternal({ object: 'list', data: [], model: 'm', usage: { prompt_tokens: 0, total_tokens: 0 } }, context)).toThrow(TypeError);
  });
});
