import { describe, expect, it } from 'vitest';
import type { ChatChunk } from '../../types.ts';
import { ollamaLoadMs } from '../backend-facts.ts';
import { chatAnswerToInternal, fromOllamaChatResponse, OllamaChatDecoder, OllamaChatStream } from './backend-answer.ts';
import type { OllamaChatResponse } from '../wire.ts';
import { expectGatewayError } from '../../testkit.ts';

// Payloads below follow Ollama's docs/api.md ("Generate a chat completion").

describe('OllamaChatStream', () => {
  it('turns the documented stream into role, content, finish and usage chunks', () => {
    const stream = new OllamaChatStream('llama3.2');
    const chunks = [
      ...stream.push({ model: 'llama3.2', created_at: '2023-08-04T08:52:19.385406455-07:00', message: { role: 'assistant', content: 'The' }, done: false }),
      ...stream.push({ model: 'llama3.2', created_at: '2023-08-04T08:52:19.385406455-07:00', message: { role: 'assistant', content: ' sky' }, done: false }),
      ...stream.push({
        model: 'llama3.2', created_at: '2023-08-04T19:22:45.499127Z', message: { role: 'assistant', content: '' }, done: true, done_reason: 'stop',
        total_duration: 4883583458, load_duration: 1334875, prompt_eval_count: 26, prompt_eval_duration: 342546000, eval_count: 282, eval_duration: 4535599000,
      }),
    ];
    expect(chunks.map((c) => c.choices[0]?.delta ?? null)).toEqual([{ role: 'assistant', content: 'The' }, { content: ' sky' }, {}, null]);
    expect(chunks.map((c) => c.choices[0]?.finish_reason ?? null)).toEqual([null, null, 'stop', null]);
    expect(chunks[3]).toMatchObject({ object: 'chat.completion.chunk', choices: [], usage: { prompt_tokens: 26, completion_tokens: 282, total_tokens: 308 } });
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
    expect(chunks[0]!.id).toMatch(/^chatcmpl-[0-9a-f]{24}$/);
    expect(chunks.every((c) => c.model === 'llama3.2' && c.object === 'chat.completion.chunk')).toBe(true);
    expect(Math.abs(chunks[0]!.created - Date.now() / 1000)).toBeLessThan(5);
    expect(stream.done).toBe(true);
    expect(stream.loadMs).toBe(1);
  });

  it('sends a role chunk even when the first line is the final one', () => {
    const stream = new OllamaChatStream('llama3.2');
    const chunks = stream.push({ model: 'llama3.2', message: { role: 'assistant', content: '' }, done: true, done_reason: 'load' });
    expect(chunks.map((c) => c.choices[0]?.delta)).toEqual([{ role: 'assistant', content: '' }, {}, undefined]);
    expect(chunks[1]!.choices[0]!.finish_reason).toBe('stop');
    expect(chunks[2]!.usage).toEqual({ prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 });
  });

  it('maps thinking to reasoning_content', () => {
    const stream = new OllamaChatStream('qwen3');
    const first = stream.push({ model: 'qwen3', message: { role: 'assistant', content: '', thinking: 'Let me think' }, done: false });
    const second = stream.push({ model: 'qwen3', message: { role: 'assistant', content: 'Blue.' }, done: false });
    expect(first[0]!.choices[0]!.delta).toEqual({ role: 'assistant', content: '', reasoning_content: 'Let me think' });
    expect(second[0]!.choices[0]!.delta).toEqual({ content: 'Blue.' });
  });

  it('streams tool calls with index, generated id and JSON arguments, then finish_reason tool_calls', () => {
    const stream = new OllamaChatStream('llama3.2');
    const line = (name: string, args: Record<string, unknown>): OllamaChatResponse => ({ model: 'llama3.2', message: { role: 'assistant', content: '', tool_calls: [{ function: { name, arguments: args } }] }, done: false });
    const chunks = [
      ...stream.push(line('get_current_weather', { format: 'celsius', location: 'Paris, FR' })),
      ...stream.push(line('get_current_weather', { format: 'celsius', location: 'Lyon, FR' })),
      ...stream.push({ model: 'llama3.2', message: { role: 'assistant', content: '' }, done: true, done_reason: 'stop', prompt_eval_count: 122, eval_count: 33 }),
    ];
    const calls = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
    expect(calls).toEqual([
      { index: 0, id: expect.stringMatching(/^call_[0-9a-f]{24}$/), type: 'function', function: { name: 'get_current_weather', arguments: '{"format":"celsius","location":"Paris, FR"}' } },
      { index: 1, id: expect.stringMatching(/^call_/), type: 'function', function: { name: 'get_current_weather', arguments: '{"format":"celsius","location":"Lyon, FR"}' } },
    ]);
    expect(calls[0]!.id).not.toBe(calls[1]!.id);
    expect(chunks[0]!.choices[0]!.delta.role).toBe('assistant');
    expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe('tool_calls');
    expect(chunks.at(-1)!.usage).toEqual({ prompt_tokens: 122, completion_tokens: 33, total_tokens: 155 });
  });

  it('keeps the tool call id Ollama 0.12.10+ sends', () => {
    const stream = new OllamaChatStream('m');
    const [chunk] = stream.push({ message: { role: 'assistant', content: '', tool_calls: [{ id: 'call_olla', function: { index: 0, name: 'f', arguments: {} } }] }, done: false });
    expect(chunk!.choices[0]!.delta.tool_calls![0]!.id).toBe('call_olla');
  });

  it("maps done_reason 'length' to finish_reason 'length'", () => {
    const stream = new OllamaChatStream('m');
    const chunks = stream.push({ model: 'm', message: { role: 'assistant', content: 'The' }, done: true, done_reason: 'length', prompt_eval_count: 3, eval_count: 1 });
    expect(chunks.map((c) => c.choices[0]?.finish_reason ?? null)).toEqual([null, 'length', null]);
  });

  it('throws backend_error on an error line inside the stream', () => {
    const stream = new OllamaChatStream('m');
    stream.push({ model: 'm', message: { role: 'assistant', content: 'The' }, done: false });
    expectGatewayError(() => stream.push({ error: 'llama runner process has terminated: exit status 2' }), 'backend_error', /llama runner process has terminated/);
  });
});

describe('fromOllamaChatResponse', () => {
  it('turns the documented non-streaming answer into a chat.completion', () => {
    const completion = fromOllamaChatResponse({
      model: 'llama3.2', created_at: '2023-12-12T14:13:43.416799Z', message: { role: 'assistant', content: 'Hello! How are you today?' }, done: true,
      total_duration: 5191566416, load_duration: 2154458, prompt_eval_count: 26, prompt_eval_duration: 383809000, eval_count: 298, eval_duration: 4799921000,
    }, 'llama3.2');
    expect(completion).toMatchObject({
      object: 'chat.completion',
      model: 'llama3.2',
      choices: [{ index: 0, finish_reason: 'stop', logprobs: null, message: { role: 'assistant', content: 'Hello! How are you today?', refusal: null } }],
      usage: { prompt_tokens: 26, completion_tokens: 298, total_tokens: 324 },
    });
    expect(completion.id).toMatch(/^chatcmpl-/);
    expect(completion.choices[0]!.message.tool_calls).toBeUndefined();
  });

  it('turns the documented tool call answer into tool_calls with string arguments', () => {
    const completion = fromOllamaChatResponse({
      model: 'llama3.2', created_at: '2024-07-22T20:33:28.123648Z',
      message: { role: 'assistant', content: '', tool_calls: [{ function: { name: 'get_current_weather', arguments: { format: 'celsius', location: 'Paris, FR' } } }] },
      done_reason: 'stop', done: true, total_duration: 885095291, load_duration: 3753500, prompt_eval_count: 122, prompt_eval_duration: 328493000, eval_count: 33, eval_duration: 552222000,
    }, 'llama3.2');
    const choice = completion.choices[0]!;
    expect(choice.finish_reason).toBe('tool_calls');
    expect(choice.message.tool_calls).toEqual([
      { id: expect.stringMatching(/^call_/), type: 'function', function: { name: 'get_current_weather', arguments: '{"format":"celsius","location":"Paris, FR"}' } },
    ]);
  });

  it('carries thinking as reasoning_content and throws on an error body', () => {
    const completion = fromOllamaChatResponse({ model: 'qwen3', message: { role: 'assistant', content: 'Blue.', thinking: 'Rayleigh.' }, done: true, done_reason: 'stop' }, 'qwen3');
    expect(completion.choices[0]!.message).toMatchObject({ content: 'Blue.', reasoning_content: 'Rayleigh.' });
    expectGatewayError(() => fromOllamaChatResponse({ error: 'unexpected EOF' }, 'qwen3'), 'backend_error', /unexpected EOF/);
  });
});

describe('ollamaLoadMs', () => {
  it('converts nanoseconds to milliseconds and reports only a load', () => {
    expect(ollamaLoadMs({ load_duration: 6338219291 })).toBe(6338);
    expect(ollamaLoadMs({ load_duration: 0 })).toBeUndefined();
    expect(ollamaLoadMs({})).toBeUndefined();
  });
});

describe('OllamaChatDecoder', () => {
  const lines = [
    { model: 'llama3.2', created_at: '2023-08-04T08:52:19.385406455-07:00', message: { role: 'assistant', content: 'The' }, done: false },
    { model: 'llama3.2', created_at: '2023-08-04T08:52:19.385406455-07:00', message: { role: 'assistant', content: ' sky' }, done: false },
    { model: 'llama3.2', created_at: '2023-08-04T19:22:45.499127Z', message: { role: 'assistant', content: '' }, done: true, done_reason: 'stop', total_duration: 4883583458, load_duration: 6338219291, prompt_eval_count: 26, eval_count: 282 },
  ];
  const bytes = Buffer.from(lines.map((l) => JSON.stringify(l) + '\n').join(''));

  it('reads NDJSON bytes cut anywhere, even inside a UTF-8 character', () => {
    const text = Buffer.from(JSON.stringify({ model: 'llama3.2', message: { role: 'assistant', content: 'héllo ☀' }, done: false }) + '\n');
    const all = Buffer.concat([text, bytes]);
    for (const cut of [1, 30, text.indexOf(Buffer.from('☀')) + 1, all.length - 1]) {
      const decoder = new OllamaChatDecoder({ model: 'llama3.2' });
      const chunks: ChatChunk[] = [...decoder.push(all.subarray(0, cut)), ...decoder.push(all.subarray(cut))];
      expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('héllo ☀The sky');
      expect(chunks.at(-1)!.usage).toEqual({ prompt_tokens: 26, completion_tokens: 282, total_tokens: 308 });
      expect(decoder.complete).toBe(true);
      expect(decoder.loadMs).toBe(6338);
    }
  });

  it('is not complete before the final line and reads a last line without its newline on flush', () => {
    const decoder = new OllamaChatDecoder({ model: 'llama3.2' });
    decoder.push(bytes.subarray(0, bytes.length - 1));
    expect(decoder.complete).toBe(false);
    expect(decoder.flush().at(-1)!.usage).toBeDefined();
    expect(decoder.complete).toBe(true);
  });

  it('ends at an error line or a line that is not JSON, keeping the chunks read before it', () => {
    const decoder = new OllamaChatDecoder({ model: 'm' });
    decoder.push(Buffer.from(JSON.stringify(lines[0]) + '\n'));
    const before = decoder.push(Buffer.from(`${JSON.stringify(lines[1])}\n{"error":"an error was encountered while running the model: unexpected EOF"}\n${JSON.stringify(lines[2])}\n`));
    expect(before).toHaveLength(1);
    expectGatewayError(() => { throw decoder.error; }, 'backend_error', /^ollama: an error was encountered/);
    expect(decoder.push(Buffer.from(JSON.stringify(lines[3]) + '\n'))).toEqual([]);
    const malformed = new OllamaChatDecoder({ model: 'm' });
    expect(malformed.push(Buffer.from('{"model":"m","message":\n'))).toEqual([]);
    expectGatewayError(() => { throw malformed.error; }, 'backend_error', /malformed stream line/);
  });
});

describe('chatAnswerToInternal', () => {
  it("names the backend's model when Ollama's answer has none", () => {
    expect(chatAnswerToInternal({ message: { role: 'assistant', content: 'hi' }, done: true }, { model: 'llama3.2:latest' }).model).toBe('llama3.2:latest');
  });
});
