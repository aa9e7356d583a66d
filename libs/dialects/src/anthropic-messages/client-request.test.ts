import { describe, expect, it } from 'vitest';
import type { ChatRequest } from '../types.ts';
import { anthropicPromptToChat, anthropicRequestToInternal, effortForBudget } from './client-request.ts';
import type { MessagesRequestPayload } from './schema.ts';

const MODEL = 'qwen3-coder';
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=';

/** The tool of Anthropic's tool use guide. */
const weather = {
  name: 'get_weather',
  description: 'Get the current weather in a given location',
  input_schema: { type: 'object' as const, properties: { location: { type: 'string' } }, required: ['location'] },
};

/** A request body as it comes off the wire (JSON: fields the schema's types do not name included). */
type Body = Record<string, unknown>;

function chat(body: Body): ChatRequest & { top_k?: number } {
  const request = { model: MODEL, max_tokens: 1024, messages: [{ role: 'user', content: 'Hello, Claude' }], ...body };
  const internal = anthropicRequestToInternal(request as MessagesRequestPayload);
  expect(internal.form).toBe('chat');
  return internal.request as ChatRequest & { top_k?: number };
}

function invalidOf(body: Body): { message: string; param: string | null } {
  try {
    chat(body);
  } catch (err) {
    const { code, message, param } = err as { code: string; message: string; param: string | null };
    expect(code).toBe('invalid_request');
    return { message, param };
  }
  throw new Error('no error');
}

describe('anthropicRequestToInternal', () => {
  it('maps the plain fields', () => {
    expect(chat({
      stop_sequences: ['\n\nHuman:'], temperature: 0.2, top_p: 0.9, top_k: 40, metadata: { user_id: 'user-7' }, stream: true,
    })).toEqual({
      model: MODEL,
      messages: [{ role: 'user', content: 'Hello, Claude' }],
      max_completion_tokens: 1024,
      stop: ['\n\nHuman:'],
      temperature: 0.2,
      top_p: 0.9,
      top_k: 40,
      user: 'user-7',
      stream: true,
    });
    expect(chat({ top_k: 0, metadata: { user_id: null } })).toEqual({ model: MODEL, messages: [{ role: 'user', content: 'Hello, Claude' }], max_completion_tokens: 1024 });
  });

  it('makes one system prompt of a string or of blocks (cache_control dropped), and keeps system turns', () => {
    expect(chat({ system: 'You are terse.' }).messages[0]).toEqual({ role: 'system', content: 'You are terse.' });
    const blocks = chat({
      system: [
        { type: 'text', text: 'You are Claude Code.' },
        { type: 'text', text: 'Be careful with git.', cache_control: { type: 'ephemeral' } },
      ],
      messages: [{ role: 'user', content: 'hi' }, { role: 'system', content: [{ type: 'text', text: 'Now answer in French.' }] }],
    });
    expect(blocks.messages).toEqual([
      { role: 'system', content: 'You are Claude Code.\n\nBe careful with git.' },
      { role: 'user', content: 'hi' },
      { role: 'system', content: 'Now answer in French.' },
    ]);
  });

  it('keeps a multi-turn conversation, with text blocks as parts', () => {
    const request = chat({
      messages: [
        { role: 'user', content: 'Hello there.' },
        { role: 'assistant', content: "Hi, I'm Claude. How can I help you?" },
        { role: 'user', content: [{ type: 'text', text: '<system-reminder>cwd is /repo</system-reminder>' }, { type: 'text', text: 'Explain LLMs.' }] },
        { role: 'assistant', content: [{ type: 'text', text: 'LLMs ' }, { type: 'text', text: 'predict tokens.' }] },
      ],
    });
    expect(request.messages).toEqual([
      { role: 'user', content: 'Hello there.' },
      { role: 'assistant', content: "Hi, I'm Claude. How can I help you?" },
      { role: 'user', content: [{ type: 'text', text: '<system-reminder>cwd is /repo</system-reminder>' }, { type: 'text', text: 'Explain LLMs.' }] },
      { role: 'assistant', content: 'LLMs predict tokens.' },
    ]);
  });

  it('turns base64 and URL images into image_url parts, and refuses Files API images', () => {
    const request = chat({
      messages: [{
        role: 'user',
        content: [
          { type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG } },
          { type: 'image', source: { type: 'url', url: 'https://upload.wikimedia.org/ant.jpg' } },
          { type: 'text', text: 'What is in these images?' },
        ],
      }],
    });
    expect(request.messages[0]).toEqual({
      role: 'user',
      content: [
        { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } },
        { type: 'image_url', image_url: { url: 'https://upload.wikimedia.org/ant.jpg' } },
        { type: 'text', text: 'What is in these images?' },
      ],
    });
    const file = invalidOf({ messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'file', file_id: 'file_011' } }] }] });
    expect(file).toEqual({ message: expect.stringContaining("Anthropic's Files API") as string, param: 'messages[0].content[0].source' });
  });

  it('turns tool_use into tool_calls and tool_result into tool messages, in OpenAI order', () => {
    const request = chat({
      tools: [weather],
      messages: [
        { role: 'user', content: 'Weather in Paris and a screenshot of the map?' },
        {
          role: 'assistant',
          content: [
            { type: 'thinking', thinking: 'Two tools.', signature: 'EqQBCgIYAhIM' },
            { type: 'text', text: 'Let me check.' },
            { type: 'tool_use', id: 'toolu_01A', name: 'get_weather', input: { location: 'Paris' } },
            { type: 'tool_use', id: 'toolu_01B', name: 'screenshot', input: {} },
          ],
        },
        {
          role: 'user',
          content: [
            { type: 'tool_result', tool_use_id: 'toolu_01A', content: '15 degrees, cloudy' },
            { type: 'tool_result', tool_use_id: 'toolu_01B', content: [{ type: 'text', text: 'map.png' }, { type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG } }] },
            { type: 'text', text: 'And tomorrow?' },
          ],
        },
        { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_01C', name: 'get_weather', input: { location: 'Mars' } }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_01C', content: 'unknown location', is_error: true }] },
      ],
    });
    expect(request.messages.slice(1)).toEqual([
      {
        role: 'assistant',
        content: 'Let me check.',
        tool_calls: [
          { id: 'toolu_01A', type: 'function', function: { name: 'get_weather', arguments: '{"location":"Paris"}' } },
          { id: 'toolu_01B', type: 'function', function: { name: 'screenshot', arguments: '{}' } },
        ],
      },
      { role: 'tool', tool_call_id: 'toolu_01A', content: '15 degrees, cloudy' },
      { role: 'tool', tool_call_id: 'toolu_01B', content: 'map.png' },
      { role: 'user', content: [{ type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } }, { type: 'text', text: 'And tomorrow?' }] },
      { role: 'assistant', content: null, tool_calls: [{ id: 'toolu_01C', type: 'function', function: { name: 'get_weather', arguments: '{"location":"Mars"}' } }] },
      { role: 'tool', tool_call_id: 'toolu_01C', content: 'Error: unknown location' },
    ]);
    expect(request.tools).toEqual([{ type: 'function', function: { name: 'get_weather', description: 'Get the current weather in a given location', parameters: weather.input_schema } }]);
  });

  it('maps tool_choice and disable_parallel_tool_use', () => {
    expect(chat({ tools: [weather] })).not.toHaveProperty('tool_choice');
    expect(chat({ tools: [weather], tool_choice: { type: 'auto' } })).toMatchObject({ tool_choice: 'auto' });
    expect(chat({ tools: [weather], tool_choice: { type: 'any', disable_parallel_tool_use: true } })).toMatchObject({ tool_choice: 'required', parallel_tool_calls: false });
    expect(chat({ tools: [weather], tool_choice: { type: 'tool', name: 'get_weather' } }))
      .toMatchObject({ tool_choice: { type: 'function', function: { name: 'get_weather' } } });
    expect(chat({ tools: [weather], tool_choice: { type: 'none' } })).toMatchObject({ tool_choice: 'none' });
    expect(chat({ tools: [weather], tool_choice: { type: 'none' } })).not.toHaveProperty('parallel_tool_calls');
    // Without tools, a tool choice has nothing to choose from (backends reject it): left out.
    expect(chat({ tool_choice: { type: 'any' } })).not.toHaveProperty('tool_choice');
  });

  it('turns a thinking budget into a reasoning effort; adaptive and disabled thinking leave the model its default', () => {
    expect(chat({ max_tokens: 8000, thinking: { type: 'enabled', budget_tokens: 1024 } }).reasoning_effort).toBe('low');
    expect(chat({ max_tokens: 8000, thinking: { type: 'enabled', budget_tokens: 4096 } }).reasoning_effort).toBe('medium');
    expect(chat({ max_tokens: 32000, thinking: { type: 'enabled', budget_tokens: 16384 } }).reasoning_effort).toBe('high');
    expect(chat({ thinking: { type: 'adaptive' } })).not.toHaveProperty('reasoning_effort');
    expect(chat({ thinking: { type: 'disabled' } })).not.toHaveProperty('reasoning_effort');
    expect([1024, 2047, 2048, 8191, 8192, 64000].map(effortForBudget)).toEqual(['low', 'low', 'medium', 'medium', 'high', 'high']);
  });

  it('reads documents and search results as text, a base64 PDF as a file part', () => {
    const request = chat({
      messages: [{
        role: 'user',
        content: [
          { type: 'document', source: { type: 'text', media_type: 'text/plain', data: 'The grass is green.' }, title: 'Facts', context: 'From the wiki' },
          { type: 'document', source: { type: 'content', content: [{ type: 'text', text: 'Part one.' }] } },
          { type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: 'JVBERi0x' }, title: 'paper.pdf' },
          { type: 'search_result', source: 'https://wiki.lab/gpu', title: 'GPU node', content: [{ type: 'text', text: 'It has 48 GB.' }] },
        ],
      }],
    });
    expect(request.messages[0]!.content).toEqual([
      { type: 'text', text: 'Facts\nFrom the wiki\n\nThe grass is green.' },
      { type: 'text', text: 'Part one.' },
      { type: 'file', file: { file_data: 'data:application/pdf;base64,JVBERi0x', filename: 'paper.pdf' } },
      { type: 'text', text: 'GPU node\nhttps://wiki.lab/gpu\nIt has 48 GB.' },
    ]);
    expect(invalidOf({ messages: [{ role: 'user', content: [{ type: 'document', source: { type: 'url', url: 'https://x/a.pdf' } }] }] }).message)
      .toMatch(/^document blocks with a url source need Anthropic/);
  });

  it('maps output_config: a JSON schema format and an effort', () => {
    const schema = { type: 'object', properties: { name: { type: 'string' } } };
    expect(chat({ output_config: { format: { type: 'json_schema', schema }, effort: 'max' } })).toMatchObject({
      response_format: { type: 'json_schema', json_schema: { name: 'output', schema, strict: true } },
      reasoning_effort: 'high',
    });
  });

  it('refuses server tools and Anthropic-defined tools with a message naming the tool', () => {
    const search = invalidOf({ tools: [weather, { type: 'web_search_20250305', name: 'web_search', max_uses: 5 }] });
    expect(search).toEqual({
      message: "the server tool 'web_search' (web_search_20250305) runs on Anthropic's servers, and this model is not served by Anthropic: use a Claude model, or define the tool yourself with an input_schema",
      param: 'tools[1].type',
    });
    expect(invalidOf({ tools: [{ type: 'code_execution_20250825', name: 'code_execution' }] }).message).toMatch(/^the server tool 'code_execution' \(code_execution_20250825\) runs on Anthropic's servers/);
    expect(invalidOf({ tools: [{ type: 'bash_20250124', name: 'bash' }] }).message)
      .toBe("the tool 'bash' (bash_20250124) is defined by Anthropic and only Claude models know its schema; this model is not served by Anthropic: define it as a custom tool with an input_schema");
    expect(invalidOf({ mcp_servers: [{ type: 'url', url: 'https://mcp.example/sse', name: 'x' }] }).param).toBe('mcp_servers');
  });

  it('refuses unknown blocks, server tool blocks, misplaced blocks and max_tokens 0', () => {
    const unknown = invalidOf({ messages: [{ role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'hologram', data: 'x' }] }] });
    expect(unknown).toEqual({ message: "unknown content block type 'hologram'", param: 'messages[0].content[1].type' });
    const server = invalidOf({
      messages: [
        { role: 'user', content: 'search' },
        { role: 'assistant', content: [{ type: 'server_tool_use', id: 'srvtoolu_1', name: 'web_search', input: { query: 'x' } }] },
      ],
    });
    expect(server.message).toMatch(/^server_tool_use blocks come from Anthropic's server tools/);
    expect(invalidOf({ messages: [{ role: 'user', content: [{ type: 'web_search_tool_result', tool_use_id: 'srvtoolu_1', content: [] }] }] }).param).toBe('messages[0].content[0].type');
    expect(invalidOf({ messages: [{ role: 'user', content: [{ type: 'tool_use', id: 't', name: 'n', input: {} }] }] }).message).toBe('tool_use blocks belong in assistant turns');
    expect(invalidOf({ max_tokens: 0 })).toMatchObject({ param: 'max_tokens' });
  });
});

describe('anthropicPromptToChat', () => {
  it('gives the prompt of a token count request, for a tokenizer', () => {
    expect(anthropicPromptToChat({ model: MODEL, system: 'Be brief.', tools: [weather], messages: [{ role: 'user', content: 'Weather?' }] })).toEqual({
      model: MODEL,
      messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Weather?' }],
      tools: [{ type: 'function', function: { name: 'get_weather', description: weather.description, parameters: weather.input_schema } }],
    });
  });
});
