import { describe, expect, it } from 'vitest';
import { GatewayError } from '@homelab/bus';
import type { ChatRequest } from '../types.ts';
import {
  fromOllamaChatResponse, fromOllamaEmbedResponse, ollamaLoadMs, OllamaChatStream, toOllamaChatRequest, toOllamaEmbedRequest,
  type OllamaChatResponse,
} from './chat-backend.ts';

// Payloads below follow Ollama's docs/api.md ("Generate a chat completion") and OpenAI's chat/embeddings references.

const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==';

const weatherTool = {
  type: 'function' as const,
  function: {
    name: 'get_current_weather',
    description: 'Get the current weather for a location',
    parameters: {
      type: 'object',
      properties: {
        location: { type: 'string', description: 'The location to get the weather for, e.g. San Francisco, CA' },
        format: { type: 'string', description: "The format to return the weather in, e.g. 'celsius' or 'fahrenheit'", enum: ['celsius', 'fahrenheit'] },
      },
      required: ['location', 'format'],
    },
  },
};

function expectGatewayError(fn: () => unknown, code: string, text: RegExp): void {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).code).toBe(code);
    expect((err as GatewayError).message).toMatch(text);
    return;
  }
  throw new Error('expected a GatewayError');
}

describe('toOllamaChatRequest', () => {
  it('maps every role, developer to system, and joins text parts', () => {
    const request: ChatRequest = {
      model: 'llama3.2',
      messages: [
        { role: 'developer', content: 'Answer briefly.' },
        { role: 'system', content: [{ type: 'text', text: 'You run in a home lab.' }] },
        { role: 'user', content: [{ type: 'text', text: 'why is the sky blue?' }, { type: 'text', text: 'One sentence.' }] },
        { role: 'assistant', content: 'due to rayleigh scattering.' },
        { role: 'user', content: 'how is that different than mie scattering?' },
      ],
    };
    expect(toOllamaChatRequest(request, { stream: true })).toEqual({
      model: 'llama3.2',
      stream: true,
      messages: [
        { role: 'system', content: 'Answer briefly.' },
        { role: 'system', content: 'You run in a home lab.' },
        { role: 'user', content: 'why is the sky blue?\nOne sentence.' },
        { role: 'assistant', content: 'due to rayleigh scattering.' },
        { role: 'user', content: 'how is that different than mie scattering?' },
      ],
    });
  });

  it('sends data-URL images as base64 and refuses http image URLs', () => {
    const withImage = toOllamaChatRequest({
      model: 'llava',
      messages: [{ role: 'user', content: [{ type: 'text', text: 'what is in this image?' }, { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } }] }],
    }, { stream: false });
    expect(withImage.messages).toEqual([{ role: 'user', content: 'what is in this image?', images: [PNG] }]);

    expectGatewayError(() => toOllamaChatRequest({
      model: 'llava',
      messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://example.com/cat.png' } }] }],
    }, { stream: false }), 'invalid_request', /cannot fetch image URLs.*data URL/);

    expectGatewayError(() => toOllamaChatRequest({
      model: 'llava',
      messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: { data: 'AAAA', format: 'wav' } }] }],
    }, { stream: false }), 'invalid_request', /input_audio/);
  });

  it('passes tools through and turns tool calls and tool results into Ollama messages', () => {
    const request: ChatRequest = {
      model: 'llama3.2',
      tools: [weatherTool],
      messages: [
        { role: 'user', content: 'What is the weather today in Paris?' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'call_abc', type: 'function', function: { name: 'get_current_weather', arguments: '{"location":"Paris, FR","format":"celsius"}' } }] },
        { role: 'tool', tool_call_id: 'call_abc', content: '22 degrees' },
        { role: 'tool', tool_call_id: 'call_unknown', content: [{ type: 'text', text: 'no name' }] },
      ],
    };
    const out = toOllamaChatRequest(request, { stream: true });
    expect(out.tools).toEqual([weatherTool]);
    expect(out.messages).toEqual([
      { role: 'user', content: 'What is the weather today in Paris?' },
      { role: 'assistant', content: '', tool_calls: [{ id: 'call_abc', function: { name: 'get_current_weather', arguments: { location: 'Paris, FR', format: 'celsius' } } }] },
      { role: 'tool', content: '22 degrees', tool_name: 'get_current_weather', tool_call_id: 'call_abc' },
      { role: 'tool', content: 'no name', tool_call_id: 'call_unknown' },
    ]);
  });

  it("drops tools when tool_choice is 'none' and gives parameterless tools an empty schema", () => {
    const noTools = toOllamaChatRequest({ model: 'm', messages: [{ role: 'user', content: 'hi' }], tools: [weatherTool], tool_choice: 'none' }, { stream: true });
    expect(noTools.tools).toBeUndefined();
    const bare = toOllamaChatRequest({ model: 'm', messages: [{ role: 'user', content: 'hi' }], tools: [{ type: 'function', function: { name: 'now' } }] }, { stream: true });
    expect(bare.tools).toEqual([{ type: 'function', function: { name: 'now', parameters: { type: 'object', properties: {} } } }]);
  });

  it('refuses tool call arguments that are not a JSON object', () => {
    const call = (args: string): ChatRequest => ({
      model: 'm',
      messages: [{ role: 'assistant', tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: args } }] }],
    });
    expectGatewayError(() => toOllamaChatRequest(call('{"location":'), { stream: true }), 'invalid_request', /not valid JSON \(f\)/);
    expectGatewayError(() => toOllamaChatRequest(call('[1]'), { stream: true }), 'invalid_request', /must be a JSON object/);
    expect(toOllamaChatRequest(call(''), { stream: true }).messages[0]!.tool_calls![0]!.function.arguments).toEqual({});
  });

  it('maps response_format to format', () => {
    const schema = { type: 'object', properties: { age: { type: 'integer' }, available: { type: 'boolean' } }, required: ['age', 'available'] };
    const base = { model: 'llama3.1', messages: [{ role: 'user' as const, content: 'Ollama is 22 years old and busy saving the world.' }] };
    expect(toOllamaChatRequest({ ...base, response_format: { type: 'json_object' } }, { stream: false }).format).toBe('json');
    expect(toOllamaChatRequest({ ...base, response_format: { type: 'json_schema', json_schema: { name: 'person', schema } } }, { stream: false }).format).toEqual(schema);
    expect(toOllamaChatRequest({ ...base, response_format: { type: 'text' } }, { stream: false }).format).toBeUndefined();
  });

  it('maps sampling options, stop and keep_alive', () => {
    const out = toOllamaChatRequest({
      model: 'llama3.2',
      messages: [{ role: 'user', content: 'Hello!' }],
      max_tokens: 50,
      max_completion_tokens: 100,
      stop: 'user:',
      seed: 101,
      temperature: 0,
      top_p: 0.9,
      frequency_penalty: 1,
      presence_penalty: 1.5,
    }, { stream: true, keepAlive: '30m' });
    expect(out.options).toEqual({ num_predict: 100, stop: ['user:'], seed: 101, temperature: 0, top_p: 0.9, frequency_penalty: 1, presence_penalty: 1.5 });
    expect(out.keep_alive).toBe('30m');

    const legacy = toOllamaChatRequest({ model: 'm', messages: [{ role: 'user', content: 'x' }], max_tokens: 50, stop: ['\n', 'user:'] }, { stream: true });
    expect(legacy.options).toEqual({ num_predict: 50, stop: ['\n', 'user:'] });
    expect(legacy.keep_alive).toBeUndefined();

    const plain = toOllamaChatRequest({ model: 'm', messages: [{ role: 'user', content: 'x' }] }, { stream: true });
    expect(plain).not.toHaveProperty('options');

    const ownKeepAlive = { model: 'm', messages: [{ role: 'user', content: 'x' }], keep_alive: 0, think: true } as ChatRequest;
    const withExtras = toOllamaChatRequest(ownKeepAlive, { stream: true, keepAlive: '30m' });
    expect(withExtras.keep_alive).toBe(0);
    expect(withExtras.think).toBe(true);
  });

  it('refuses n > 1', () => {
    expectGatewayError(() => toOllamaChatRequest({ model: 'm', messages: [], n: 2 }, { stream: true }), 'invalid_request', /n must be 1/);
  });
});

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

describe('embeddings', () => {
  it('builds /api/embed bodies for text inputs only', () => {
    expect(toOllamaEmbedRequest({ model: 'all-minilm', input: 'Why is the sky blue?' })).toEqual({ model: 'all-minilm', input: 'Why is the sky blue?' });
    expect(toOllamaEmbedRequest({ model: 'all-minilm', input: ['Why is the sky blue?', 'Why is the grass green?'], dimensions: 256 }, '10m'))
      .toEqual({ model: 'all-minilm', input: ['Why is the sky blue?', 'Why is the grass green?'], dimensions: 256, keep_alive: '10m' });
    expectGatewayError(() => toOllamaEmbedRequest({ model: 'all-minilm', input: [1, 2, 3] }), 'invalid_request', /string/);
  });

  it('returns the OpenAI list shape, as floats or base64', () => {
    const answer = { model: 'all-minilm', embeddings: [[0.010071029, -0.0017594862, 0.05007221], [-0.0098027075, 0.06042469, 0.025257962]], total_duration: 14143917, load_duration: 1019500, prompt_eval_count: 8 };
    const floats = fromOllamaEmbedResponse(answer, { model: 'all-minilm', input: ['a', 'b'] });
    expect(floats).toEqual({
      object: 'list',
      model: 'all-minilm',
      data: [{ object: 'embedding', index: 0, embedding: answer.embeddings[0] }, { object: 'embedding', index: 1, embedding: answer.embeddings[1] }],
      usage: { prompt_tokens: 8, total_tokens: 8 },
    });
    const encoded = fromOllamaEmbedResponse(answer, { model: 'all-minilm', input: ['a', 'b'], encoding_format: 'base64' });
    const decoded = new Float32Array(Uint8Array.from(Buffer.from(encoded.data[1]!.embedding as unknown as string, 'base64')).buffer);
    expect([...decoded]).toEqual([...new Float32Array(answer.embeddings[1]!)]);
  });
});
