import { GatewayError, validator } from '@homelab/bus';
import { describe, expect, it } from 'vitest';
import { responsesToChat } from './client-request.ts';
import { ResponsesRequestSchema, type ResponsesRequestPayload } from './schema.ts';

const check = validator(ResponsesRequestSchema);

/** The chat request of a Responses body, validated first as the router would. */
function translate(body: Record<string, unknown>): ReturnType<typeof responsesToChat> {
  return responsesToChat(check.parse(body) as ResponsesRequestPayload);
}

function refusal(body: Record<string, unknown>): GatewayError {
  try {
    translate(body);
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
    // `unsupported` where another backend (OpenAI) could serve it: the router tries the next candidate.
    expect(['invalid_request', 'unsupported']).toContain((err as GatewayError).code);
    return err as GatewayError;
  }
  throw new Error('the request was translated');
}

const PNG = 'data:image/png;base64,iVBORw0KGgo=';

describe('responsesToChat', () => {
  it('instructions become the system message; a string input the user message', () => {
    expect(translate({ model: 'smart', instructions: 'Be brief.', input: 'Hi' })).toEqual({
      model: 'smart', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }],
    });
  });

  it('messages with parts: text and images for the user, text for system, developer and assistant', () => {
    const chat = translate({
      model: 'smart',
      input: [
        { role: 'developer', content: [{ type: 'input_text', text: 'Answer in French.' }] },
        { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'What is this?' }, { type: 'input_image', image_url: PNG, detail: 'low' }] },
        { type: 'message', role: 'assistant', status: 'completed', id: 'msg_1', content: [{ type: 'output_text', text: 'Un chat.', annotations: [] }] },
        { role: 'user', content: [{ type: 'input_image', image_url: 'https://example.org/cat.png', detail: 'original' }] },
        { role: 'user', content: [{ type: 'input_file', file_data: 'data:application/pdf;base64,JVBERi0=', filename: 'a.pdf' }] },
      ],
    });
    expect(chat.messages).toEqual([
      { role: 'developer', content: [{ type: 'text', text: 'Answer in French.' }] },
      { role: 'user', content: [{ type: 'text', text: 'What is this?' }, { type: 'image_url', image_url: { url: PNG, detail: 'low' } }] },
      { role: 'assistant', content: 'Un chat.' },
      // Chat has no 'original' detail: left to the model's default.
      { role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://example.org/cat.png' } }] },
      { role: 'user', content: [{ type: 'file', file: { file_data: 'data:application/pdf;base64,JVBERi0=', filename: 'a.pdf' } }] },
    ]);
  });

  it('function calls join the assistant turn before them; outputs become tool messages; reasoning is left out', () => {
    const chat = translate({
      model: 'smart',
      input: [
        { role: 'user', content: 'Weather in Oslo and Rome?' },
        { type: 'reasoning', id: 'rs_1', summary: [], content: [{ type: 'reasoning_text', text: 'Two calls.' }] },
        { type: 'message', role: 'assistant', content: 'Let me check.' },
        { type: 'function_call', id: 'fc_1', call_id: 'call_a', name: 'get_weather', arguments: '{"city":"Oslo"}', status: 'completed' },
        { type: 'function_call', call_id: 'call_b', name: 'get_weather', arguments: '{"city":"Rome"}' },
        { type: 'function_call_output', call_id: 'call_a', output: '12 degrees' },
        { type: 'function_call_output', call_id: 'call_b', output: [{ type: 'input_text', text: '25 degrees' }] },
        { type: 'function_call', call_id: 'call_c', name: 'get_time', arguments: '{}' },
      ],
    });
    expect(chat.messages).toEqual([
      { role: 'user', content: 'Weather in Oslo and Rome?' },
      {
        role: 'assistant', content: 'Let me check.', tool_calls: [
          { id: 'call_a', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } },
          { id: 'call_b', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Rome"}' } },
        ],
      },
      { role: 'tool', tool_call_id: 'call_a', content: '12 degrees' },
      { role: 'tool', tool_call_id: 'call_b', content: [{ type: 'text', text: '25 degrees' }] },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_c', type: 'function', function: { name: 'get_time', arguments: '{}' } }] },
    ]);
  });

  it('maps tools, tool_choice, text.format, reasoning, limits and sampling', () => {
    const parameters = { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] };
    const chat = translate({
      model: 'smart', input: 'Hi', stream: true, user: 'u1', temperature: 0.3, top_p: 0.9, max_output_tokens: 99, parallel_tool_calls: false,
      tools: [{ type: 'function', name: 'get_weather', description: 'Weather', parameters, strict: true }, { type: 'function', name: 'noop', parameters: null, strict: null }],
      tool_choice: 'required',
      text: { format: { type: 'json_schema', name: 'answer', schema: parameters, strict: true, description: 'An answer' }, verbosity: 'low' },
      reasoning: { effort: 'low', summary: 'auto' },
      metadata: { a: 'b' }, store: true, truncation: 'auto', include: ['reasoning.encrypted_content'],
    });
    expect(chat).toEqual({
      model: 'smart', messages: [{ role: 'user', content: 'Hi' }], stream: true,
      tools: [
        { type: 'function', function: { name: 'get_weather', description: 'Weather', parameters, strict: true } },
        { type: 'function', function: { name: 'noop' } },
      ],
      tool_choice: 'required', parallel_tool_calls: false,
      response_format: { type: 'json_schema', json_schema: { name: 'answer', schema: parameters, strict: true, description: 'An answer' } },
      reasoning_effort: 'low', max_completion_tokens: 99, temperature: 0.3, top_p: 0.9, user: 'u1',
    });
  });

  it('tool_choice: a named function, and allowed_tools narrowing the tools', () => {
    const tools = [{ type: 'function', name: 'a', parameters: {} }, { type: 'function', name: 'b', parameters: {} }, { type: 'function', name: 'c', parameters: {} }];
    expect(translate({ model: 'm', input: 'x', tools, tool_choice: { type: 'function', name: 'b' } }).tool_choice).toEqual({ type: 'function', function: { name: 'b' } });
    const allowed = translate({ model: 'm', input: 'x', tools, tool_choice: { type: 'allowed_tools', mode: 'required', tools: [{ type: 'function', name: 'a' }, { type: 'function', name: 'c' }] } });
    expect(allowed.tool_choice).toBe('required');
    expect(allowed.tools!.map((t) => (t.type === 'function' ? t.function.name : t.type))).toEqual(['a', 'c']);
    expect(translate({ model: 'm', input: 'x', text: { format: { type: 'json_object' } } }).response_format).toEqual({ type: 'json_object' });
    expect(translate({ model: 'm', input: 'x', text: { format: { type: 'text' } } })).not.toHaveProperty('response_format');
  });
});

describe('responsesToChat refuses, naming the field, what only OpenAI can do', () => {
  it("OpenAI's built-in tools and tool choices", () => {
    expect(refusal({ model: 'm', input: 'x', tools: [{ type: 'function', name: 'f' }, { type: 'web_search' }] })).toMatchObject({
      code: 'unsupported',
      param: 'tools[1].type', message: "tools[1]: 'web_search' is one of OpenAI's built-in tools, which only OpenAI runs; this model can call function tools only",
    });
    for (const type of ['file_search', 'code_interpreter', 'image_generation', 'computer_use_preview', 'mcp', 'custom', 'local_shell']) {
      expect(refusal({ model: 'm', input: 'x', tools: [{ type, server_label: 's', name: 'n' }] }).message).toContain(`'${type}' is one of OpenAI's built-in tools`);
    }
    expect(refusal({ model: 'm', input: 'x', tools: [{ type: 'function', name: 'f' }], tool_choice: { type: 'file_search' } }).param).toBe('tool_choice');
    expect(refusal({ model: 'm', input: 'x', tool_choice: 'required' }).message).toContain('no function tools');
  });

  it('items of built-in tools, item references, files and images at OpenAI', () => {
    expect(refusal({ model: 'm', input: [{ role: 'user', content: 'x' }, { type: 'web_search_call', id: 'ws_1', status: 'completed' }] })).toMatchObject({
      param: 'input[1].type', message: "input[1] is a 'web_search_call' item: it belongs to OpenAI's built-in tools, which only OpenAI runs; this model cannot take it",
    });
    expect(refusal({ model: 'm', input: [{ id: 'msg_123' }] }).message).toContain('input[0] is an item_reference');
    expect(refusal({ model: 'm', input: [{ role: 'user', content: [{ type: 'input_image', file_id: 'file-1', detail: 'auto' }] }] }).param).toBe('input[0].content[0].file_id');
    expect(refusal({ model: 'm', input: [{ role: 'user', content: [{ type: 'input_file', file_id: 'file-1' }] }] }).param).toBe('input[0].content[0]');
    expect(refusal({ model: 'm', input: [{ role: 'system', content: [{ type: 'input_image', image_url: PNG }] }] })).toMatchObject({ code: 'invalid_request', message: expect.stringContaining('a system message can hold only text') });
    expect(refusal({ model: 'm', input: [{ type: 'function_call_output', call_id: 'c', output: [{ type: 'input_image', image_url: PNG }] }] }).param).toBe('input[0].output[0]');
  });

  it('state kept at OpenAI: an unexpanded previous_response_id, conversations, prompts, background', () => {
    expect(refusal({ model: 'm', input: 'x', previous_response_id: 'resp_abc' })).toMatchObject({ param: 'previous_response_id', message: "Previous response with id 'resp_abc' not found." });
    expect(refusal({ model: 'm', input: 'x', conversation: 'conv_1' }).param).toBe('conversation');
    expect(refusal({ model: 'm', prompt: { id: 'pmpt_1' } }).param).toBe('prompt');
    expect(refusal({ model: 'm', input: 'x', background: true }).param).toBe('background');
  });

  it('a request with nothing to answer', () => {
    expect(refusal({ model: 'm' }).param).toBe('input');
    expect(refusal({ model: 'm', instructions: 'Be brief.', input: [] }).param).toBe('input');
  });
});
