import { describe, expect, it } from 'vitest';
import type { ChatRequest } from '../../types.ts';
import { chatRequestFromInternal, toOllamaChatRequest } from './backend-request.ts';
import { expectGatewayError } from '../../testkit.ts';

// Payloads below follow Ollama's docs/api.md ("Generate a chat completion") and OpenAI's chat reference.

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
    expectGatewayError(() => toOllamaChatRequest({ model: 'm', messages: [], n: 2 }, { stream: true }), 'unsupported', /n must be 1/);
  });
});

describe('chatRequestFromInternal', () => {
  it("sets the backend's model, the worker's stream choice and the lab's keep_alive default", () => {
    const body = chatRequestFromInternal({ form: 'chat', request: { model: 'smart', messages: [{ role: 'user', content: 'hi' }], stream: false } }, { model: 'llama3.2:latest', stream: true, defaults: { keep_alive: '30m' } });
    expect(body).toEqual({ model: 'llama3.2:latest', messages: [{ role: 'user', content: 'hi' }], stream: true, keep_alive: '30m' });
    const own = chatRequestFromInternal({ form: 'chat', request: { model: 'm', messages: [{ role: 'user', content: 'hi' }], keep_alive: 0 } as ChatRequest }, { model: 'm', stream: false, defaults: { keep_alive: '30m' } });
    expect(own.keep_alive).toBe(0);
  });

  it('carries top_k from another dialect into options', () => {
    const body = chatRequestFromInternal({ form: 'chat', request: { model: 'm', messages: [{ role: 'user', content: 'hi' }], top_k: 40 } as ChatRequest }, { model: 'm', stream: false });
    expect(body.options).toEqual({ top_k: 40 });
  });

  it('refuses the other internal forms', () => {
    expect(() => chatRequestFromInternal({ form: 'embeddings', request: { model: 'm', input: 'x' } }, { model: 'm', stream: false })).toThrow(TypeError);
  });
});
