import { describe, expect, it } from 'vitest';
import { GatewayError } from '@homelab/bus';
import type { ChatRequest } from '../types.ts';
import { anthropicRequestFromInternal, toAnthropicRequest } from './backend-request.ts';

const MODEL = 'claude-haiku-4-5';

/** OpenAI's function calling example tool. */
const weatherTool = {
  type: 'function' as const,
  function: {
    name: 'get_current_weather',
    description: 'Get the current weather in a given location',
    parameters: {
      type: 'object',
      properties: {
        location: { type: 'string', description: 'The city and state, e.g. San Francisco, CA' },
        unit: { type: 'string', enum: ['celsius', 'fahrenheit'] },
      },
      required: ['location'],
    },
  },
};

describe('toAnthropicRequest', () => {
  it('moves system and developer messages, wherever they are, into the top-level system prompt', () => {
    const body = toAnthropicRequest({
      model: MODEL,
      messages: [
        { role: 'system', content: 'You are a helpful assistant.' },
        { role: 'developer', content: [{ type: 'text', text: 'Answer in French.' }] },
        { role: 'user', content: 'Hello!' },
        { role: 'assistant', content: 'Bonjour !' },
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'How are you?' },
      ],
    });
    expect(body).toEqual({
      model: MODEL,
      max_tokens: 4096,
      system: 'You are a helpful assistant.\n\nAnswer in French.\n\nBe brief.',
      messages: [
        { role: 'user', content: [{ type: 'text', text: 'Hello!' }] },
        { role: 'assistant', content: [{ type: 'text', text: 'Bonjour !' }] },
        { role: 'user', content: [{ type: 'text', text: 'How are you?' }] },
      ],
    });
  });

  it('merges consecutive same-role messages so turns alternate', () => {
    const body = toAnthropicRequest({
      model: MODEL,
      messages: [
        { role: 'user', content: 'Hello there.' },
        { role: 'user', content: 'Can you explain LLMs in plain English?' },
        { role: 'assistant', content: 'Sure.' },
        { role: 'assistant', content: [{ type: 'text', text: ' LLMs predict' }, { type: 'text', text: ' text.' }] },
        { role: 'user', content: '' },
        { role: 'user', content: 'Thanks' },
      ],
    });
    expect(body.messages).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'Hello there.' }, { type: 'text', text: 'Can you explain LLMs in plain English?' }] },
      { role: 'assistant', content: [{ type: 'text', text: 'Sure.' }, { type: 'text', text: ' LLMs predict text.' }] },
      { role: 'user', content: [{ type: 'text', text: 'Thanks' }] },
    ]);
  });

  it('translates image parts: data URLs to base64 sources, http(s) URLs to url sources', () => {
    const body = toAnthropicRequest({
      model: MODEL,
      messages: [{
        role: 'user',
        content: [
          { type: 'text', text: 'What is in these images?' },
          { type: 'image_url', image_url: { url: 'data:image/jpeg;base64,/9j/4AAQSkZJRg==' } },
          { type: 'image_url', image_url: { url: 'https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg', detail: 'high' } },
        ],
      }],
    });
    expect(body.messages[0]!.content).toEqual([
      { type: 'text', text: 'What is in these images?' },
      { type: 'image', source: { type: 'base64', media_type: 'image/jpeg', data: '/9j/4AAQSkZJRg==' } },
      { type: 'image', source: { type: 'url', url: 'https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg' } },
    ]);
  });

  it('rejects content Anthropic cannot take', () => {
    const audio: ChatRequest = { model: MODEL, messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: { data: 'AAAA', format: 'wav' } }] }] };
    expect(() => toAnthropicRequest(audio)).toThrow(expect.objectContaining({ code: 'invalid_request', param: 'messages' }));
    const svg: ChatRequest = { model: MODEL, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/svg+xml;base64,PHN2Zz4=' } }] }] };
    expect(() => toAnthropicRequest(svg)).toThrow(GatewayError);
    expect(() => toAnthropicRequest({ model: MODEL, n: 2, messages: [{ role: 'user', content: 'hi' }] })).toThrow(expect.objectContaining({ code: 'unsupported', param: 'n' }));
  });

  it('translates tools, tool calls and tool results (merged into one user turn, ids and arguments kept)', () => {
    const body = toAnthropicRequest({
      model: MODEL,
      tools: [weatherTool],
      messages: [
        { role: 'user', content: "What's the weather like in Boston and Paris today?" },
        {
          role: 'assistant',
          content: null,
          tool_calls: [
            { id: 'call_abc123', type: 'function', function: { name: 'get_current_weather', arguments: '{\n"location": "Boston, MA"\n}' } },
            { id: 'call_def456', type: 'function', function: { name: 'get_current_weather', arguments: '{"location":"Paris","unit":"celsius"}' } },
          ],
        },
        { role: 'tool', tool_call_id: 'call_abc123', content: '{"temperature": 22, "unit": "celsius"}' },
        { role: 'tool', tool_call_id: 'call_def456', content: [{ type: 'text', text: '18 degrees' }] },
        { role: 'user', content: 'And tomorrow?' },
      ],
    });
    expect(body.tools).toEqual([{
      name: 'get_current_weather',
      description: 'Get the current weather in a given location',
      input_schema: weatherTool.function.parameters,
    }]);
    expect(body.tool_choice).toBeUndefined();
    expect(body.messages).toEqual([
      { role: 'user', content: [{ type: 'text', text: "What's the weather like in Boston and Paris today?" }] },
      {
        role: 'assistant',
        content: [
          { type: 'tool_use', id: 'call_abc123', name: 'get_current_weather', input: { location: 'Boston, MA' } },
          { type: 'tool_use', id: 'call_def456', name: 'get_current_weather', input: { location: 'Paris', unit: 'celsius' } },
        ],
      },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 'call_abc123', content: '{"temperature": 22, "unit": "celsius"}' },
          { type: 'tool_result', tool_use_id: 'call_def456', content: '18 degrees' },
          { type: 'text', text: 'And tomorrow?' },
        ],
      },
    ]);
  });

  it('rejects tool call arguments that are not JSON', () => {
    const request: ChatRequest = {
      model: MODEL,
      messages: [
        { role: 'user', content: 'hi' },
        { role: 'assistant', tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'f', arguments: '{"a":' } }] },
      ],
    };
    expect(() => toAnthropicRequest(request)).toThrow(expect.objectContaining({ code: 'invalid_request', message: 'tool call arguments must be valid JSON' }));
  });

  it('maps tool_choice and parallel_tool_calls', () => {
    const base: ChatRequest = { model: MODEL, tools: [weatherTool], messages: [{ role: 'user', content: 'weather?' }] };
    expect(toAnthropicRequest({ ...base, tool_choice: 'auto' }).tool_choice).toEqual({ type: 'auto' });
    expect(toAnthropicRequest({ ...base, tool_choice: 'required' }).tool_choice).toEqual({ type: 'any' });
    expect(toAnthropicRequest({ ...base, tool_choice: 'none' }).tool_choice).toEqual({ type: 'none' });
    expect(toAnthropicRequest({ ...base, tool_choice: { type: 'function', function: { name: 'get_current_weather' } } }).tool_choice)
      .toEqual({ type: 'tool', name: 'get_current_weather' });
    expect(toAnthropicRequest({ ...base, parallel_tool_calls: false }).tool_choice).toEqual({ type: 'auto', disable_parallel_tool_use: true });
    expect(toAnthropicRequest({ ...base, tool_choice: 'required', parallel_tool_calls: false }).tool_choice).toEqual({ type: 'any', disable_parallel_tool_use: true });
    // Without tools, tool_choice has nothing to refer to and is left out.
    expect(toAnthropicRequest({ model: MODEL, tool_choice: 'auto', messages: [{ role: 'user', content: 'hi' }] })).not.toHaveProperty('tool_choice');
  });

  it('maps stop, max tokens, sampling and user', () => {
    const messages: ChatRequest['messages'] = [{ role: 'user', content: 'Say this is a test' }];
    expect(toAnthropicRequest({ model: MODEL, messages, stop: '\n' }).stop_sequences).toEqual(['\n']);
    expect(toAnthropicRequest({ model: MODEL, messages, stop: ['END', 'STOP'] }).stop_sequences).toEqual(['END', 'STOP']);
    expect(toAnthropicRequest({ model: MODEL, messages }).max_tokens).toBe(4096);
    expect(toAnthropicRequest({ model: MODEL, messages }, { defaultMaxTokens: 1000 }).max_tokens).toBe(1000);
    expect(toAnthropicRequest({ model: MODEL, messages, max_tokens: 300 }).max_tokens).toBe(300);
    expect(toAnthropicRequest({ model: MODEL, messages, max_tokens: 300, max_completion_tokens: 200 }).max_tokens).toBe(200);
    expect(toAnthropicRequest({ model: MODEL, messages, temperature: 1.7 }).temperature).toBe(1);
    expect(toAnthropicRequest({ model: MODEL, messages, temperature: -0.5 }).temperature).toBe(0);
    const both = toAnthropicRequest({ model: MODEL, messages, temperature: 0.2, top_p: 0.9 });
    expect([both.temperature, both.top_p]).toEqual([0.2, undefined]);
    expect(toAnthropicRequest({ model: MODEL, messages, top_p: 0.9 }).top_p).toBe(0.9);
    expect(toAnthropicRequest({ model: MODEL, messages, user: 'user-1234' }).metadata).toEqual({ user_id: 'user-1234' });
  });

  it('asks for JSON in the system prompt, with the schema for json_schema', () => {
    const messages: ChatRequest['messages'] = [{ role: 'system', content: 'Extract the event.' }, { role: 'user', content: 'Alice and Bob meet on Friday.' }];
    const schema = { type: 'object', properties: { name: { type: 'string' }, date: { type: 'string' } }, required: ['name', 'date'], additionalProperties: false };
    const object = toAnthropicRequest({ model: MODEL, messages, response_format: { type: 'json_object' } });
    expect(object.system).toBe('Extract the event.\n\nReply with a single valid JSON object and nothing else: no prose, no Markdown code fences.');
    const withSchema = toAnthropicRequest({ model: MODEL, messages, response_format: { type: 'json_schema', json_schema: { name: 'calendar_event', schema, strict: true } } });
    expect(withSchema.system).toContain(`conform to this JSON schema:\n${JSON.stringify(schema)}`);
    expect(toAnthropicRequest({ model: MODEL, messages, response_format: { type: 'text' } }).system).toBe('Extract the event.');
  });

  it('turns reasoning_effort into a thinking budget below max_tokens, without sampling changes', () => {
    const messages: ChatRequest['messages'] = [{ role: 'user', content: 'Are there an infinite number of prime numbers such that n mod 4 == 3?' }];
    const low = toAnthropicRequest({ model: MODEL, messages, reasoning_effort: 'low', temperature: 0.3 });
    expect(low).toMatchObject({ thinking: { type: 'enabled', budget_tokens: 1024 }, max_tokens: 4096 });
    expect(low).not.toHaveProperty('temperature');
    expect(toAnthropicRequest({ model: MODEL, messages, reasoning_effort: 'medium' })).toMatchObject({ thinking: { budget_tokens: 4096 }, max_tokens: 8192 });
    expect(toAnthropicRequest({ model: MODEL, messages, reasoning_effort: 'high' })).toMatchObject({ thinking: { budget_tokens: 16384 }, max_tokens: 20480 });
    expect(toAnthropicRequest({ model: MODEL, messages, reasoning_effort: 'high', max_completion_tokens: 32000 })).toMatchObject({ max_tokens: 32000 });
    expect(toAnthropicRequest({ model: MODEL, messages, reasoning_effort: 'none' })).not.toHaveProperty('thinking');
  });

  it('passes top_k, which vLLM and Ollama clients send, but not with thinking', () => {
    const messages: ChatRequest['messages'] = [{ role: 'user', content: 'hi' }];
    const withTopK = { model: MODEL, messages, top_k: 40 } as ChatRequest;
    expect(toAnthropicRequest(withTopK).top_k).toBe(40);
    expect(toAnthropicRequest({ ...withTopK, reasoning_effort: 'low' } as ChatRequest)).not.toHaveProperty('top_k');
    expect(toAnthropicRequest({ model: MODEL, messages, top_k: -1 } as ChatRequest)).not.toHaveProperty('top_k');
  });
});

describe('anthropicRequestFromInternal', () => {
  const request: ChatRequest = { model: 'claude', messages: [{ role: 'user', content: 'hi' }], stream_options: { include_usage: true } };

  it('sets the backend model and the stream flag; the lab default max_tokens applies when the client set none', () => {
    const body = anthropicRequestFromInternal({ form: 'chat', request }, { model: MODEL, stream: true, defaults: { max_tokens: 1234 } });
    expect(body).toEqual({ model: MODEL, max_tokens: 1234, messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }], stream: true });
    expect(anthropicRequestFromInternal({ form: 'chat', request: { ...request, max_tokens: 50 } }, { model: MODEL, stream: false, defaults: { max_tokens: 1234 } }))
      .toMatchObject({ max_tokens: 50, stream: false });
    expect(anthropicRequestFromInternal({ form: 'chat', request }, { model: MODEL, stream: false })).toMatchObject({ max_tokens: 4096 });
  });

  it('refuses the other internal forms', () => {
    expect(() => anthropicRequestFromInternal({ form: 'completion', request: { model: 'x', prompt: 'hi' } }, { model: MODEL, stream: false })).toThrow(TypeError);
  });
});
