import { validator } from '@homelab/bus';
import { describe, expect, it } from 'vitest';
import { CountTokensRequestSchema, MessagesRequestSchema } from './schema.ts';

const messages = validator(MessagesRequestSchema);
const countTokens = validator(CountTokensRequestSchema);

const USER = [{ role: 'user', content: 'Hello, Claude' }];
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=';

function errorOf(check: typeof messages | typeof countTokens, body: unknown): string {
  try {
    check.parse(body);
  } catch (err) {
    expect(err).toMatchObject({ code: 'invalid_request' });
    return (err as Error).message;
  }
  return 'valid';
}

/** A request shaped like Claude Code's: system blocks with cache_control, tools, thinking, fields the schema does not name. */
const claudeCodeLike = {
  model: 'claude-sonnet-4-5',
  max_tokens: 32000,
  stream: true,
  metadata: { user_id: 'user_abc_account__session_123' },
  system: [
    { type: 'text', text: "You are Claude Code, Anthropic's official CLI for Claude.", cache_control: { type: 'ephemeral' } },
    { type: 'text', text: 'Working directory: /repo', cache_control: { type: 'ephemeral', ttl: '1h' } },
  ],
  messages: [
    { role: 'user', content: [{ type: 'text', text: '<system-reminder>…</system-reminder>' }, { type: 'text', text: 'fix the test', cache_control: { type: 'ephemeral' } }] },
    {
      role: 'assistant',
      content: [
        { type: 'thinking', thinking: 'Run the tests first.', signature: 'EqQBCgIYAhIM' },
        { type: 'redacted_thinking', data: 'EmwKAhgBEgy3va3pzix' },
        { type: 'tool_use', id: 'toolu_01', name: 'Bash', input: { command: 'npm test' } },
      ],
    },
    {
      role: 'user',
      content: [
        { type: 'tool_result', tool_use_id: 'toolu_01', content: [{ type: 'text', text: '1 failed' }, { type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG } }] },
        { type: 'tool_result', tool_use_id: 'toolu_02', content: 'ok', is_error: false },
      ],
    },
  ],
  tools: [
    { name: 'Bash', description: 'Run a command', input_schema: { type: 'object', properties: { command: { type: 'string' } }, required: ['command'] } },
    { type: 'custom', name: 'Read', input_schema: { type: 'object', properties: {} }, cache_control: { type: 'ephemeral' } },
    { type: 'web_search_20250305', name: 'web_search', max_uses: 3 },
  ],
  tool_choice: { type: 'auto', disable_parallel_tool_use: false },
  thinking: { type: 'enabled', budget_tokens: 10000 },
  context_management: { edits: [] },
  a_field_of_next_year: { x: 1 },
};

describe('MessagesRequestSchema', () => {
  it('takes real requests, with the blocks, tools and fields it does not name', () => {
    expect(errorOf(messages, claudeCodeLike)).toBe('valid');
    expect(errorOf(messages, { model: 'm', max_tokens: 1, messages: USER, system: 'terse', temperature: 1, top_p: 0.5, top_k: 5, stop_sequences: ['END'] })).toBe('valid');
    expect(errorOf(messages, { model: 'm', max_tokens: 0, messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'url', url: 'https://x/a.png' } }] }] })).toBe('valid');
    // Block and thinking types of the future pass to Anthropic, which judges them.
    expect(errorOf(messages, { model: 'm', max_tokens: 9, messages: [{ role: 'user', content: [{ type: 'hologram', frames: 3 }] }], thinking: { type: 'adaptive' } })).toBe('valid');
    expect(errorOf(messages, { model: 'm', max_tokens: 9, messages: [{ role: 'system', content: 'be brief' }, ...USER] })).toBe('valid');
  });

  it('rejects what Anthropic rejects, naming the field', () => {
    const cases: [unknown, string][] = [
      [{ model: 'm', messages: USER }, 'max_tokens: required, expected an integer, got nothing'],
      [{ max_tokens: 5, messages: USER }, 'model: required, expected a string, got nothing'],
      [{ model: 'm', max_tokens: '5', messages: USER }, 'max_tokens: expected an integer, got string "5"'],
      [{ model: 'm', max_tokens: 5, messages: [] }, 'messages: expected at least 1 item, got 0'],
      [{ model: 'm', max_tokens: 5, messages: [{ role: 'tool', content: 'x' }] }, "messages[0].role: expected one of 'user', 'assistant', 'system', got 'tool'"],
      [{ model: 'm', max_tokens: 5, messages: [{ role: 'user', content: [{ type: 'text', text: 7 }] }] }, 'messages[0].content[0].text: expected a string, got number 7'],
      [{ model: 'm', max_tokens: 5, messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'base64', media_type: 'image/bmp', data: 'Qk0=' } }] }] },
        "messages[0].content[0].source.media_type: expected one of 'image/jpeg', 'image/png', 'image/gif', 'image/webp', got 'image/bmp'"],
      [{ model: 'm', max_tokens: 5, messages: [{ role: 'assistant', content: [{ type: 'tool_use', id: 't', name: 'n' }] }] }, 'messages[0].content[0].input: required, expected an object, got nothing'],
      [{ model: 'm', max_tokens: 5, messages: USER, system: 42 }, 'system: expected a string or an array, got number 42'],
      [{ model: 'm', max_tokens: 5, messages: USER, tools: [{ name: 'f' }] }, 'tools[0].input_schema: required, expected an object, got nothing'],
      [{ model: 'm', max_tokens: 5, messages: USER, tool_choice: { type: 'tool' } }, 'tool_choice.name: required, expected a string, got nothing'],
      [{ model: 'm', max_tokens: 5, messages: USER, tool_choice: { type: 'sometimes' } }, "tool_choice.type: expected one of 'auto', 'any', 'tool', 'none', got 'sometimes'"],
      [{ model: 'm', max_tokens: 5000, messages: USER, thinking: { type: 'enabled', budget_tokens: 100 } }, 'thinking.budget_tokens: expected an integer at least 1024, got 100'],
      [{ model: 'm', max_tokens: 5, messages: USER, temperature: 1.5 }, 'temperature: expected a number from 0 to 1, got 1.5'],
      [{ model: 'm', max_tokens: 5, messages: USER, stop_sequences: 'END' }, 'stop_sequences: expected an array, got string "END"'],
      [{ model: 'm', max_tokens: 5, messages: USER, metadata: { user_id: 5 } }, 'metadata.user_id: expected a string, got number 5'],
      [{ model: 'm', max_tokens: 5, messages: USER, stream: 'yes' }, 'stream: expected a boolean, got string "yes"'],
    ];
    for (const [body, message] of cases) expect(errorOf(messages, body)).toBe(message);
  });
});

describe('CountTokensRequestSchema', () => {
  it('takes a prompt without max_tokens and rejects one without messages', () => {
    expect(errorOf(countTokens, { model: 'm', messages: USER, system: 'x', tools: claudeCodeLike.tools })).toBe('valid');
    expect(errorOf(countTokens, { model: 'm' })).toBe('messages: required, expected an array, got nothing');
  });
});
