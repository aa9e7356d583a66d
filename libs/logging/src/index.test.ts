import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from './index.ts';

function capture(): { lines: Record<string, unknown>[]; stream: Writable } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({ write(chunk, _enc, cb) { for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l)); cb(); } });
  return { lines, stream };
}

describe('createLogger', () => {
  it('writes JSON lines bound to the service and child bindings', () => {
    const { lines, stream } = capture();
    const log = createLogger({ service: 'router', destination: stream });
    log.child({ requestId: 'req-1', traceId: 'abc' }).info({ backend: 'vllm' }, 'routed');
    expect(lines[0]).toMatchObject({ service: 'router', requestId: 'req-1', traceId: 'abc', backend: 'vllm', msg: 'routed', level: 'info' });
  });

  it('redacts authorization headers, API keys and passwords', () => {
    const { lines, stream } = capture();
    const log = createLogger({ service: 'ingress', destination: stream });
    log.info({ req: { headers: { authorization: 'Bearer sk-secret', 'x-api-key': 'sk-ant-secret' } }, config: { apiKey: 'sk-x', password: 'hunter2' } }, 'in');
    const text = JSON.stringify(lines[0]);
    expect(text).not.toContain('sk-secret');
    expect(text).not.toContain('sk-ant-secret');
    expect(text).not.toContain('sk-x');
    expect(text).not.toContain('hunter2');
    expect(text).toContain('[redacted]');
  });
});
