import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { Supervisor, formatLogLine } from './supervisor.ts';

describe('formatLogLine', () => {
  it('prints pino lines readably with the service name', () => {
    const line = JSON.stringify({ level: 'warn', time: '2026-11-27T16:42:43.154Z', service: 'router', msg: 'model discovery failed', provider: 'vllm', n: 2 });
    expect(formatLogLine('router', line, 8)).toBe('16:42:43.154 router   WARN  model discovery failed provider=vllm n=2');
  });
  it('reformats nats-server lines and passes anything else through', () => {
    expect(formatLogLine('nats', '[16338] 2026/11/27 16:42:42.016835 [INF] Server is ready', 6)).toBe('16:42:42.016 nats   INFO  Server is ready');
    expect(formatLogLine('x', 'plain text', 1)).toMatch(/^\d\d:\d\d:\d\d\.\d{3} x plain text$/);
  });
});

describe('Supervisor', () => {
  it('restarts a crashing process with backoff and stops everything cleanly', async () => {
    const lines: string[] = [];
    const out = new Writable({ write: (c, _e, cb) => { lines.push(...String(c).split('\n').filter(Boolean)); cb(); } });
    const sup = new Supervisor({ out, backoffMs: { first: 50, max: 200 } });
    sup.add({ name: 'crasher', command: process.execPath, args: ['-e', 'console.log(JSON.stringify({level:"info",msg:"up"})); process.exit(3)'], env: process.env, jsonLogs: true });
    sup.add({ name: 'steady', command: process.execPath, args: ['-e', 'process.on("SIGTERM", () => { console.log("bye"); process.exit(0) }); setInterval(() => {}, 1000)'], env: process.env, jsonLogs: false });
    // Until three restarts happened (each start of node takes its time on a busy machine).
    const deadline = Date.now() + 15_000;
    while (lines.filter((l) => l.includes('crasher exited (code 3); restarting in')).length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await sup.stop(2000);
    const restarts = lines.filter((l) => l.includes('crasher exited (code 3); restarting in'));
    expect(restarts.length).toBeGreaterThanOrEqual(3);
    // Backoff doubles up to its ceiling.
    expect(restarts[0]).toContain('restarting in 50 ms');
    expect(restarts[1]).toContain('restarting in 100 ms');
    expect(lines.some((l) => / steady .*bye/.test(l))).toBe(true);
    expect(lines.filter((l) => / crasher .*INFO  up/.test(l)).length).toBeGreaterThanOrEqual(3);
  });

  it('does not restart a process that cannot start (exit 78), says why, and reports a required one', async () => {
    const lines: string[] = [];
    const out = new Writable({ write: (c, _e, cb) => { lines.push(...String(c).split('\n').filter(Boolean)); cb(); } });
    const gaveUp: string[] = [];
    const sup = new Supervisor({ out, backoffMs: { first: 20, max: 50 }, onCannotStart: (name, reason, required) => { gaveUp.push(`${name}|${required}|${reason}`); } });
    const fatal = JSON.stringify({ level: 'fatal', msg: 'port 8080 is already in use on 127.0.0.1, so the HTTP API cannot listen there; use another port: PORT=8081 npm start' });
    sup.add({ name: 'ingress', command: process.execPath, args: ['-e', `console.log(${JSON.stringify(fatal)}); process.exit(78)`], env: process.env, jsonLogs: true, required: true });
    const deadline = Date.now() + 5000;
    while (gaveUp.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 300)); // a restart, if there were one, would have run by now
    await sup.stop(2000);
    expect(gaveUp).toEqual(['ingress|true|port 8080 is already in use on 127.0.0.1, so the HTTP API cannot listen there; use another port: PORT=8081 npm start']);
    expect(lines.filter((l) => / ingress .*FATAL/.test(l))).toHaveLength(1);
    expect(lines.filter((l) => l.includes('restarting in'))).toEqual([]);
    expect(lines.some((l) => l.includes('ingress cannot start and will not be restarted: port 8080 is already in use'))).toBe(true);
  });
});
