import { describe, expect, it } from 'vitest';
import type { ChatRequest } from '../../types.ts';
import { chatRequestToInternal } from './client-request.ts';
import type { OllamaChatBody } from './schema.ts';
import { thrownGatewayError } from '../../testkit.ts';

// Request bodies follow Ollama's docs/api.md ("Generate a chat completion") and the `ollama` npm client's types.

const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==';
const JPEG = '/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHRofHh0aHBwgJC4nICIsIxwcKDcpLDAxNDQ0Hyc5PTgyPC4zNDL/wAALCAABAAEBAREA/8QAFAABAAAAAAAAAAAAAAAAAAAACf/EABQQAQAAAAAAAAAAAAAAAAAAAAD/2gAIAQEAAD8AKp//2Q==';

const weatherTool = {
  type: 'function',
  function: {
    name: 'get_current_weather',
    description: 'Get the current weather for a location',
    parameters: { type: 'object', properties: { location: { type: 'string' }, format: { type: 'string', enum: ['celsius', 'fahrenheit'] } }, required: ['location', 'format'] },
  },
};

function chat(body: OllamaChatBody): ChatRequest {
  const internal = chatRequestToInternal(body);
  if (internal.form !== 'chat') throw new Error(`expected the chat form, got ${internal.form}`);
  return internal.request;
}

describe('chatRequestToInternal', () => {
  it('maps the documented chat with history; stream defaults to true', () => {
    const request = chat({
      model: 'llama3.2',
      messages: [
        { role: 'system', content: 'Answer briefly.' },
        { role: 'user', content: 'why is the sky blue?' },
        { role: 'assistant', content: 'due to rayleigh scattering.' },
        { role: 'User', content: 'how is that different than mie scattering?' },
      ],
    });
    expect(request).toEqual({
      model: 'llama3.2',
      stream: true,
      messages: [
        { role: 'system', content: 'Answer briefly.' },
        { role: 'user', content: 'why is the sky blue?' },
        { role: 'assistant', content: 'due to rayleigh scattering.' },
        { role: 'user', content: 'how is that different than mie scattering?' },
      ],
    });
    expect(chat({ model: 'm', messages: [{ role: 'user', content: 'x' }], stream: false }).stream).toBe(false);
  });

  it('turns base64 images into data URL parts with the media type their bytes show', () => {
    const request = chat({ model: 'llava', messages: [{ role: 'user', content: 'what is in this image?', images: [PNG, JPEG] }] });
    expect(request.messages[0]).toEqual({
      role: 'user',
      content: [
        { type: 'text', text: 'what is in this image?' },
        { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } },
        { type: 'image_url', image_url: { url: `data:image/jpeg;base64,${JPEG}` } },
      ],
    });
    const alone = chat({ model: 'llava', messages: [{ role: 'user', content: '', images: [PNG] }] });
    expect(alone.messages[0]).toEqual({ role: 'user', content: [{ type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } }] });
  });

  it("refuses images that are not base64 with Go's wording, and images outside user messages", () => {
    expect(thrownGatewayError(() => chat({ model: 'llava', messages: [{ role: 'user', content: 'x', images: ['not base64!'] }] }))).toMatchObject({
      code: 'invalid_request', message: 'illegal base64 data at input byte 3', param: 'messages[0].images[0]',
    });
    expect(thrownGatewayError(() => chat({ model: 'llava', messages: [{ role: 'assistant', content: 'x', images: [PNG] }] })).message).toMatch(/only user messages can carry images/);
  });

  it('gives tool calls ids and JSON string arguments, and matches each tool result to its call', () => {
    const request = chat({
      model: 'llama3.2',
      tools: [weatherTool],
      messages: [
        { role: 'user', content: 'What is the weather today in Paris and in Lyon?' },
        {
          role: 'assistant', content: '', tool_calls: [
            { function: { name: 'get_current_weather', arguments: { format: 'celsius', location: 'Paris, FR' } } },
            { id: 'call_lyon', function: { index: 1, name: 'get_current_weather', arguments: { format: 'celsius', location: 'Lyon, FR' } } },
          ],
        },
        { role: 'tool', content: '11 degrees', tool_call_id: 'call_lyon' },
        { role: 'tool', content: '22 degrees', tool_name: 'get_current_weather' },
      ],
    });
    expect(request.tools).toEqual([weatherTool]);
    expect(request.messages.slice(1)).toEqual([
      {
        role: 'assistant', content: null, tool_calls: [
          { id: 'call_1_0', type: 'function', function: { name: 'get_current_weather', arguments: '{"format":"celsius","location":"Paris, FR"}' } },
          { id: 'call_lyon', type: 'function', function: { name: 'get_current_weather', arguments: '{"format":"celsius","location":"Lyon, FR"}' } },
        ],
      },
      { role: 'tool', tool_call_id: 'call_lyon', content: '11 degrees' },
      { role: 'tool', tool_call_id: 'call_1_0', content: '22 degrees' },
    ]);
  });

  it('answers a tool result without a name by the oldest open call, and refuses one that answers no call', () => {
    const request = chat({
      model: 'm',
      messages: [
        { role: 'user', content: 'x' },
        { role: 'assistant', content: 'checking', tool_calls: [{ function: { name: 'a', arguments: {} } }] },
        { role: 'tool', content: 'A' },
      ],
    });
    expect(request.messages[1]).toMatchObject({ content: 'checking', tool_calls: [{ id: 'call_1_0', function: { arguments: '{}' } }] });
    expect(request.messages[2]).toEqual({ role: 'tool', tool_call_id: 'call_1_0', content: 'A' });
    expect(thrownGatewayError(() => chat({ model: 'm', messages: [{ role: 'user', content: 'x' }, { role: 'tool', content: 'A', tool_name: 'a' }] }))).toMatchObject({
      code: 'invalid_request', param: 'messages[1]', message: expect.stringMatching(/must answer a tool call of an earlier assistant message/),
    });
  });

  it('gives a tool without parameters an empty schema and refuses tools of another type', () => {
    expect(chat({ model: 'm', messages: [{ role: 'user', content: 'x' }], tools: [{ type: 'function', function: { name: 'now' } }] }).tools)
      .toEqual([{ type: 'function', function: { name: 'now', parameters: { type: 'object', properties: {} } } }]);
    expect(thrownGatewayError(() => chat({ model: 'm', messages: [{ role: 'user', content: 'x' }], tools: [{ type: 'web_search', function: { name: 'search' } }] })).param).toBe('tools[0].type');
  });

  it('maps options to sampling fields and drops what only Ollama has', () => {
    const request = chat({
      model: 'llama3.2',
      messages: [{ role: 'user', content: 'Hello!' }],
      options: { seed: 101, temperature: 0, top_p: 0.9, top_k: 20, num_predict: 100, stop: ['\n', 'user:'], frequency_penalty: 1, presence_penalty: 1.5, num_ctx: 8192, repeat_penalty: 1.2, mirostat: 1 },
      keep_alive: '30m',
      truncate: false,
    });
    expect(request).toEqual({
      model: 'llama3.2', messages: [{ role: 'user', content: 'Hello!' }], stream: true,
      seed: 101, temperature: 0, top_p: 0.9, top_k: 20, max_tokens: 100, stop: ['\n', 'user:'], frequency_penalty: 1, presence_penalty: 1.5,
    });
    // -1 (until a stop) and -2 (fill the context) set no limit.
    expect(chat({ model: 'm', messages: [{ role: 'user', content: 'x' }], options: { num_predict: -1 } })).not.toHaveProperty('max_tokens');
  });

  it("refuses options of the wrong type in Ollama's words", () => {
    expect(thrownGatewayError(() => chat({ model: 'm', messages: [{ role: 'user', content: 'x' }], options: { temperature: 'hot' } })).message).toBe('option "temperature" must be of type float32');
    expect(thrownGatewayError(() => chat({ model: 'm', messages: [{ role: 'user', content: 'x' }], options: { num_predict: '10' } })).message).toBe('option "num_predict" must be of type integer');
    expect(thrownGatewayError(() => chat({ model: 'm', messages: [{ role: 'user', content: 'x' }], options: { stop: 'user:' } })).message).toBe('option "stop" must be of type array');
    expect(thrownGatewayError(() => chat({ model: 'm', messages: [{ role: 'user', content: 'x' }], options: { stop: [1] } })).message).toBe('option "stop" must be of an array of strings');
  });

  it('maps format to response_format', () => {
    const schema = { type: 'object', properties: { age: { type: 'integer' }, available: { type: 'boolean' } }, required: ['age', 'available'] };
    const base = { model: 'llama3.1', messages: [{ role: 'user', content: 'Ollama is 22 years old and is busy saving the world.' }] };
    expect(chat({ ...base, format: 'json' }).response_format).toEqual({ type: 'json_object' });
    expect(chat({ ...base, format: schema }).response_format).toEqual({ type: 'json_schema', json_schema: { name: 'response', schema } });
    expect(chat({ ...base, format: '' })).not.toHaveProperty('response_format');
    expect(thrownGatewayError(() => chat({ ...base, format: 'xml' })).message).toBe('invalid format: "\\"xml\\""; expected "json" or a valid JSON Schema object');
  });

  it('maps think to reasoning_effort (true is medium, as Ollama reads it; false leaves the default)', () => {
    const base = { model: 'qwen3', messages: [{ role: 'user', content: 'x' }] };
    expect(chat({ ...base, think: true }).reasoning_effort).toBe('medium');
    expect(chat({ ...base, think: 'low' }).reasoning_effort).toBe('low');
    expect(chat({ ...base, think: 'max' }).reasoning_effort).toBe('high');
    expect(chat({ ...base, think: false })).not.toHaveProperty('reasoning_effort');
  });

  it('asks for log probabilities where the client does', () => {
    expect(chat({ model: 'm', messages: [{ role: 'user', content: 'x' }], logprobs: true, top_logprobs: 3 })).toMatchObject({ logprobs: true, top_logprobs: 3 });
  });

  it('leaves a chat without messages to the load shortcut', () => {
    expect(thrownGatewayError(() => chat({ model: 'm', messages: [] }))).toMatchObject({ code: 'invalid_request', param: 'messages' });
    expect(thrownGatewayError(() => chat({ model: 'm' }))).toMatchObject({ code: 'invalid_request', param: 'messages' });
  });

  it('refuses roles that have no equivalent', () => {
    expect(thrownGatewayError(() => chat({ model: 'm', messages: [{ role: 'narrator', content: 'x' }] }))).toMatchObject({ code: 'invalid_request', param: 'messages[0].role' });
  });
});
