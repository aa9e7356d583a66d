import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig, type LabService } from '@homelab/config';
import { startComfyUISimulator } from '@homelab/simulators';
import { serviceTarget } from './inventory.ts';
import { runProbe, type ProbeMemory, type ProbeOptions, type ProbeSpec } from './probes.ts';
import { closedPort, hasOpenssl, selfSignedCert, sleep, startHttpServer, startTcpServer, type LocalServer, type SelfSignedCert } from './testkit.ts';

const defaults = parseConfig('nodes: {}\n', 'test.yaml', {}).health;
const opts = (o: Partial<ProbeOptions> = {}): ProbeOptions => ({ timeoutMs: 2000, degradedLatencyMs: 1000, maxBodyBytes: 64 * 1024, certExpiryWarnDays: 14, ...o });
const httpSpec = (url: string, o: Partial<Extract<ProbeSpec, { type: 'http' }>> = {}): ProbeSpec => ({
  type: 'http', url, method: 'GET', headers: {}, expectStatus: [200], body: [], insecureTls: false, maxRedirects: 3, ...o,
});

/** The probe the inventory builds for a service of this kind at this URL. */
function builtin(kind: LabService['kind'], url: string, extra: Partial<LabService> = {}): ProbeSpec {
  const t = serviceTarget({ kind, port: Number(new URL(url).port), node: 'n', name: kind, url, address: '127.0.0.1', ...extra }, undefined, defaults);
  if (!t.spec) throw new Error(`no probe for ${kind}: ${t.reason}`);
  return t.spec;
}

let cert: SelfSignedCert;
const servers: Array<{ close(): Promise<void> }> = [];
async function http(handler: Parameters<typeof startHttpServer>[0], options: Parameters<typeof startHttpServer>[1] = {}): Promise<LocalServer> {
  const s = await startHttpServer(handler, options);
  servers.push(s);
  return s;
}
beforeAll(() => {
  if (!hasOpenssl()) throw new Error('these tests need the openssl CLI (apt-get install openssl) to make a self-signed certificate');
  cert = selfSignedCert();
});
afterAll(async () => { await Promise.all(servers.map((s) => s.close())); });

describe('HTTP probe', () => {
  it('is ok on the expected status, with the latency', async () => {
    const s = await http((_q, res) => res.end('fine'));
    const r = await runProbe(httpSpec(`${s.url}/health`), opts());
    expect(r).toMatchObject({ outcome: 'ok', error: null });
    expect(r.latencyMs).toBeGreaterThan(0);
    expect(s.requests[0]).toMatchObject({ method: 'GET', url: '/health' });
    expect(s.requests[0]!.headers['user-agent']).toMatch(/homelab-health/);
  });

  it('fails on a closed port: connection refused', async () => {
    const r = await runProbe(httpSpec(`http://127.0.0.1:${await closedPort()}/`), opts());
    expect(r).toMatchObject({ outcome: 'fail', error: 'connection refused', latencyMs: null });
  });

  it('a slow answer is degraded; one slower than the timeout fails within it', async () => {
    const s = await http((req, res) => { setTimeout(() => res.end('ok'), req.url === '/slow' ? 150 : 3000); });
    const slow = await runProbe(httpSpec(`${s.url}/slow`), opts({ degradedLatencyMs: 50 }));
    expect(slow.outcome).toBe('degraded');
    expect(slow.error).toMatch(/^slow: \d+ ms \(over 50 ms\)$/);
    const started = Date.now();
    const hung = await runProbe(httpSpec(`${s.url}/hang`), opts({ timeoutMs: 300 }));
    expect(hung).toMatchObject({ outcome: 'fail', error: 'timeout after 300 ms' });
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('reports an unexpected status with the start of the body', async () => {
    const s = await http((_q, res) => { res.statusCode = 503; res.end('Unhealthy'); });
    expect(await runProbe(httpSpec(s.url), opts())).toMatchObject({ outcome: 'fail', error: 'HTTP 503: Unhealthy' });
  });

  it('checks body conditions: JSON fields and text', async () => {
    const s = await http((req, res) => {
      if (req.url === '/json') return res.end('{"status":"Error","data":{"version":"8.2"}}');
      if (req.url === '/text') return res.end('Degraded');
      res.end('<html>not json</html>');
    });
    const url = (p: string) => `${s.url}${p}`;
    expect((await runProbe(httpSpec(url('/json'), { body: [{ json: 'status', equals: 'OK' }] }), opts())).error).toBe(`body: 'status' is "Error", expected "OK"`);
    expect((await runProbe(httpSpec(url('/json'), { body: [{ json: 'data.version', exists: true }], extract: { version: 'data.version' } }), opts()))).toMatchObject({ outcome: 'ok', detail: { version: '8.2' } });
    expect((await runProbe(httpSpec(url('/json'), { body: [{ json: 'data.missing', exists: true }] }), opts())).error).toBe(`body: no field 'data.missing'`);
    expect((await runProbe(httpSpec(url('/text'), { body: [{ contains: 'Healthy' }] }), opts())).error).toBe('body does not contain "Healthy" (got "Degraded")');
    expect((await runProbe(httpSpec(url('/html'), { body: [{ json: 'status', equals: 'OK' }] }), opts())).error).toBe('body is not JSON (got "<html>not json</html>")');
  });

  it('garbage instead of HTTP is down with the reason', async () => {
    const s = await startTcpServer((sock) => { sock.end('\x00\x01garbage that is not HTTP\r\n\r\n'); });
    servers.push(s);
    const r = await runProbe(httpSpec(`http://127.0.0.1:${s.port}/`), opts());
    expect(r.outcome).toBe('fail');
    expect(r.error).toMatch(/^invalid HTTP response/);
  });

  it('a connection reset is down with the reason', async () => {
    const s = await startTcpServer((sock) => { sock.once('data', () => sock.resetAndDestroy()); });
    servers.push(s);
    const r = await runProbe(httpSpec(`http://127.0.0.1:${s.port}/`), opts());
    expect(r.outcome).toBe('fail');
    expect(r.error).toMatch(/connection (reset|closed without a response)/);
  });

  it('a reset in the middle of the body is down', async () => {
    const s = await startTcpServer((sock) => {
      sock.once('data', () => { sock.write('HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n{"status":'); setTimeout(() => sock.resetAndDestroy(), 20); });
    });
    servers.push(s);
    const r = await runProbe(httpSpec(`http://127.0.0.1:${s.port}/`, { body: [{ json: 'status', equals: 'OK' }] }), opts());
    expect(r.outcome).toBe('fail');
    expect(r.error).toMatch(/connection (reset|closed)/);
  });

  it('follows a few same-host redirects, and fails a redirect loop', async () => {
    const s = await http((req, res) => {
      if (req.url === '/old') { res.writeHead(301, { location: '/health' }); return res.end(); }
      if (req.url === '/a') { res.writeHead(302, { location: '/b' }); return res.end(); }
      if (req.url === '/b') { res.writeHead(302, { location: '/a' }); return res.end(); }
      if (req.url === '/away') { res.writeHead(302, { location: 'http://127.0.0.2:9/elsewhere' }); return res.end(); }
      res.end('ok');
    });
    expect(await runProbe(httpSpec(`${s.url}/old`), opts())).toMatchObject({ outcome: 'ok' });
    expect(await runProbe(httpSpec(`${s.url}/a`), opts())).toMatchObject({ outcome: 'fail', error: 'too many redirects (more than 3; last to /a)' });
    // Another host is not followed: the 302 is the answer.
    expect(await runProbe(httpSpec(`${s.url}/away`), opts())).toMatchObject({ outcome: 'fail', error: 'HTTP 302 (redirect not followed)' });
    expect(await runProbe(httpSpec(`${s.url}/away`, { expectStatus: ['2xx', '3xx'] }), opts())).toMatchObject({ outcome: 'ok' });
  });

  it('a huge body fails body checks without reading it all; without checks only the start is read', async () => {
    let written = 0;
    const s = await http((_q, res) => {
      const chunk = Buffer.alloc(64 * 1024, 'x');
      const pump = (): void => {
        while (written < 64 * 1024 * 1024) {
          written += chunk.length;
          if (!res.write(chunk)) { res.once('drain', pump); return; }
        }
        res.end();
      };
      res.on('close', () => {});
      pump();
    });
    const r = await runProbe(httpSpec(s.url, { body: [{ contains: 'ok' }] }), opts({ maxBodyBytes: 4096 }));
    expect(r).toMatchObject({ outcome: 'fail', error: 'body larger than 4096 bytes' });
    const generic = await runProbe(httpSpec(s.url), opts());
    expect(generic.outcome).toBe('ok');
    await sleep(50);
    expect(written).toBeLessThan(64 * 1024 * 1024);
  });

  it('strips secrets from error texts', async () => {
    const s = await http((_q, res) => { res.statusCode = 500; res.end('bad key sk-very-secret-key; url http://admin:hunter22@x/ token=abc123'); });
    const r = await runProbe(httpSpec(s.url), opts({ secrets: ['sk-very-secret-key'] }));
    expect(r.error).not.toMatch(/sk-very-secret-key|hunter22|abc123/);
    expect(r.error).toMatch(/\[redacted\]/);
  });
});

describe('TLS', () => {
  it('HTTPS to a self-signed certificate fails with a hint, and passes with insecureTls', async () => {
    const s = await http((_q, res) => res.end('ok'), { tls: cert });
    const strict = await runProbe(httpSpec(s.url), opts());
    expect(strict.outcome).toBe('fail');
    expect(strict.error).toMatch(/^TLS: .*self-signed.*\(set insecureTls for a self-signed certificate\)$/i);
    expect(await runProbe(httpSpec(s.url, { insecureTls: true }), opts())).toMatchObject({ outcome: 'ok' });
  });

  it('the TLS probe reports the certificate, tolerates self-signed where told, and warns before expiry', async () => {
    const s = await http((_q, res) => res.end('ok'), { tls: cert });
    const ok = await runProbe({ type: 'tls', host: '127.0.0.1', port: s.port, insecureTls: true }, opts());
    expect(ok).toMatchObject({ outcome: 'ok', detail: { certTrusted: false, certSubject: 'localhost' } });
    expect(ok.detail?.['certDaysLeft']).toBeGreaterThanOrEqual(28);
    const strict = await runProbe({ type: 'tls', host: '127.0.0.1', port: s.port, insecureTls: false }, opts());
    expect(strict.outcome).toBe('fail');
    expect(strict.error).toMatch(/^TLS: /);
    const soon = await http((_q, res) => res.end('ok'), { tls: selfSignedCert({ days: 5 }) });
    const warn = await runProbe({ type: 'tls', host: '127.0.0.1', port: soon.port, insecureTls: true }, opts());
    expect(warn).toMatchObject({ outcome: 'degraded' });
    expect(warn.error).toMatch(/^certificate expires in [45] days$/);
  });

  it('TLS spoken to a plain HTTP server fails with the reason', async () => {
    const s = await http((_q, res) => res.end('ok'));
    const r = await runProbe({ type: 'tls', host: '127.0.0.1', port: s.port, insecureTls: true }, opts());
    expect(r.outcome).toBe('fail');
    expect(r.error).toMatch(/TLS|closed/);
  });
});

describe('TCP probe', () => {
  it('connects, and checks a banner when asked (ssh)', async () => {
    const ssh = await startTcpServer((sock) => sock.write('SSH-2.0-OpenSSH_9.6\r\n'));
    const other = await startTcpServer((sock) => sock.write('220 smtp ready\r\n'));
    const silent = await startTcpServer(() => {});
    servers.push(ssh, other, silent);
    expect(await runProbe({ type: 'tcp', host: '127.0.0.1', port: silent.port }, opts())).toMatchObject({ outcome: 'ok', error: null });
    expect(await runProbe(builtin('ssh', `http://127.0.0.1:${ssh.port}`), opts())).toMatchObject({ outcome: 'ok', detail: { banner: 'SSH-2.0-OpenSSH_9.6' } });
    expect(await runProbe(builtin('ssh', `http://127.0.0.1:${other.port}`), opts())).toMatchObject({ outcome: 'fail', error: 'unexpected banner "220 smtp ready" (expected "SSH-"…)' });
    expect(await runProbe(builtin('ssh', `http://127.0.0.1:${silent.port}`), opts({ timeoutMs: 200 }))).toMatchObject({ outcome: 'fail', error: 'timeout after 200 ms waiting for the banner' });
    expect(await runProbe({ type: 'tcp', host: '127.0.0.1', port: await closedPort() }, opts())).toMatchObject({ outcome: 'fail', error: 'connection refused' });
  });
});

describe('built-in probes per service kind (servers speaking the real APIs)', () => {
  it('vLLM: GET /health, 200 with an empty body; 503 when the engine died', async () => {
    let dead = false;
    const s = await http((req, res) => { res.statusCode = req.url === '/health' && !dead ? 200 : 503; res.end(); });
    expect(await runProbe(builtin('vllm', s.url), opts())).toMatchObject({ outcome: 'ok' });
    dead = true;
    expect(await runProbe(builtin('vllm', s.url), opts())).toMatchObject({ outcome: 'fail', error: 'HTTP 503' });
  });

  it('Ollama: /api/version up, /api/ps tells the loaded models; /api/ps failing is degraded', async () => {
    let psFails = false;
    const s = await http((req, res) => {
      res.setHeader('content-type', 'application/json');
      if (req.url === '/api/version') return res.end('{"version":"0.12.3"}');
      if (req.url === '/api/ps') {
        if (psFails) { res.statusCode = 500; return res.end('{"error":"boom"}'); }
        return res.end(JSON.stringify({ models: [{ name: 'llama3.2:3b', model: 'llama3.2:3b', size: 3_000_000_000, size_vram: 3_000_000_000, digest: 'x', details: {}, expires_at: '2026-01-01T00:00:00Z', context_length: 4096 }] }));
      }
      res.statusCode = 404;
      res.end();
    });
    const ok = await runProbe(builtin('ollama', s.url), opts());
    expect(ok).toMatchObject({ outcome: 'ok', detail: { version: '0.12.3', loadedModels: 1, loaded: 'llama3.2:3b', vramBytes: 3_000_000_000 } });
    psFails = true;
    const degraded = await runProbe(builtin('ollama', s.url), opts());
    expect(degraded).toMatchObject({ outcome: 'degraded', detail: { version: '0.12.3' } });
    expect(degraded.error).toMatch(/^api\/ps: HTTP 500/);
  });

  it('ComfyUI: /system_stats up with its version and VRAM, /queue\'s lengths in detail; ComfyUI gone is down', async () => {
    const comfy = await startComfyUISimulator({ vramTotalBytes: 24 * 1024 ** 3, faults: { hold: true } });
    try {
      // One prompt held at the GPU, one waiting behind it.
      const workflow = readFileSync(new URL('../../../config/workflows/sdxl-text-to-image.json', import.meta.url), 'utf8');
      for (let i = 0; i < 2; i++) await fetch(`${comfy.url}/prompt`, { method: 'POST', body: `{"prompt": ${workflow}}` });
      const ok = await runProbe(builtin('comfyui', comfy.url), opts());
      expect(ok).toMatchObject({ outcome: 'ok', detail: { version: expect.stringMatching(/^\d+\.\d+\.\d+$/), vramTotalBytes: 24 * 1024 ** 3, queueRunning: 1, queuePending: 1, device: expect.stringContaining('cuda:0') } });
      expect(ok.detail!['vramFreeBytes']).toBeLessThanOrEqual(24 * 1024 ** 3);
    } finally {
      await comfy.close();
    }
    expect(await runProbe(builtin('comfyui', comfy.url), opts())).toMatchObject({ outcome: 'fail', error: 'connection refused' });
  });

  it('Jellyfin: /health says Healthy; Unhealthy (503) is down', async () => {
    let healthy = true;
    const s = await http((_q, res) => { res.statusCode = healthy ? 200 : 503; res.end(healthy ? 'Healthy' : 'Unhealthy'); });
    expect(await runProbe(builtin('jellyfin', s.url), opts())).toMatchObject({ outcome: 'ok' });
    healthy = false;
    expect(await runProbe(builtin('jellyfin', s.url), opts())).toMatchObject({ outcome: 'fail', error: 'HTTP 503: Unhealthy' });
  });

  it('Sonarr/Radarr/Prowlarr: /ping {"status":"OK"}; a database error is down', async () => {
    let status = 'OK';
    const s = await http((req, res) => { res.statusCode = req.url === '/ping' && status === 'OK' ? 200 : 500; res.end(JSON.stringify({ status })); });
    for (const kind of ['sonarr', 'radarr', 'prowlarr'] as const) expect(await runProbe(builtin(kind, s.url), opts())).toMatchObject({ outcome: 'ok' });
    status = 'Error';
    expect(await runProbe(builtin('sonarr', s.url), opts())).toMatchObject({ outcome: 'fail', error: 'HTTP 500: {"status":"Error"}' });
  });

  it('Immich: /api/server/ping answers pong', async () => {
    let answer = 'pong';
    const s = await http((req, res) => { res.end(req.url === '/api/server/ping' ? JSON.stringify({ res: answer }) : '{}'); });
    expect(await runProbe(builtin('immich', s.url), opts())).toMatchObject({ outcome: 'ok' });
    answer = 'starting';
    expect(await runProbe(builtin('immich', s.url), opts())).toMatchObject({ outcome: 'fail', error: `body: 'res' is "starting", expected "pong"` });
  });

  it('qBittorrent: 403 without credentials is alive; with them it logs in once, reuses the cookie, and never hammers a wrong password', async () => {
    let logins = 0;
    const s = await http((req, res, body) => {
      if (req.url === '/api/v2/auth/login') {
        logins++;
        const form = new URLSearchParams(body);
        if (form.get('username') === 'admin' && form.get('password') === 'adminadmin') { res.setHeader('set-cookie', 'SID=abc123; HttpOnly; path=/'); return res.end('Ok.'); }
        return res.end('Fails.');
      }
      if (req.url === '/api/v2/app/version') {
        if (req.headers.cookie !== 'SID=abc123') { res.statusCode = 403; return res.end('Forbidden'); }
        return res.end('v4.5.2');
      }
      res.statusCode = 404;
      res.end();
    });
    expect(await runProbe(builtin('qbittorrent', s.url), opts())).toMatchObject({ outcome: 'ok', detail: { auth: 'required' } });
    const memory: ProbeMemory = {};
    const spec = builtin('qbittorrent', s.url, { username: 'admin', password: 'adminadmin' });
    expect(await runProbe(spec, opts({ memory }))).toMatchObject({ outcome: 'ok', detail: { version: 'v4.5.2' } });
    expect(await runProbe(spec, opts({ memory }))).toMatchObject({ outcome: 'ok', detail: { version: 'v4.5.2' } });
    expect(logins).toBe(1);

    const wrong = builtin('qbittorrent', s.url, { username: 'admin', password: 'wrong-password' });
    const bad: ProbeMemory = {};
    const first = await runProbe(wrong, opts({ memory: bad, secrets: ['wrong-password'] }));
    expect(first).toMatchObject({ outcome: 'degraded', error: 'login refused (check the username and password)' });
    const second = await runProbe(wrong, opts({ memory: bad }));
    expect(second.outcome).toBe('degraded');
    expect(logins).toBe(2); // no second login attempt within the back-off
  });

  it('Proxmox: with an API token the version call over self-signed TLS; a rejected token is degraded; without a token a TLS handshake', async () => {
    const token = 'root@pam!health=0b1c2d3e-aaaa-bbbb-cccc-000011112222';
    const s = await http((req, res) => {
      if (req.headers.authorization !== `PVEAPIToken=${token}`) { res.statusCode = 401; return res.end(`{"data":null} ${req.headers.authorization ?? ''}`); }
      res.end('{"data":{"version":"8.2.4","release":"8.2","repoid":"faa83925"}}');
    }, { tls: cert });
    const withToken = builtin('proxmox', s.url, { apiKey: token, insecureTls: true });
    expect(withToken.type).toBe('http');
    expect(await runProbe(withToken, opts())).toMatchObject({ outcome: 'ok', detail: { version: '8.2.4' } });
    const wrong = builtin('proxmox', s.url, { apiKey: 'root@pam!health=wrong-token-value', insecureTls: true });
    const rejected = await runProbe(wrong, opts({ secrets: ['root@pam!health=wrong-token-value'] }));
    expect(rejected).toMatchObject({ outcome: 'degraded', error: 'HTTP 401 (credentials rejected)' });
    const noToken = builtin('proxmox', s.url, { insecureTls: true });
    expect(noToken).toMatchObject({ type: 'tls', insecureTls: true });
    expect(await runProbe(noToken, opts())).toMatchObject({ outcome: 'ok' });
  });
});

describe('concurrency', () => {
  it('a hanging target never delays the others', async () => {
    const fast = await http((_q, res) => res.end('ok'));
    const hang = await startTcpServer(() => {}); // accepts, never answers
    servers.push(hang);
    const started = Date.now();
    const finished: Record<string, number> = {};
    const probe = (name: string, spec: ProbeSpec, timeoutMs: number) => runProbe(spec, opts({ timeoutMs })).then((r) => { finished[name] = Date.now() - started; return r; });
    const results = await Promise.all([
      probe('hang', httpSpec(`http://127.0.0.1:${hang.port}/`), 2000),
      ...Array.from({ length: 10 }, (_, i) => probe(`fast${i}`, httpSpec(`${fast.url}/${i}`), 2000)),
    ]);
    expect(results[0]).toMatchObject({ outcome: 'fail', error: 'timeout after 2000 ms' });
    expect(results.slice(1).every((r) => r.outcome === 'ok')).toBe(true);
    for (let i = 0; i < 10; i++) expect(finished[`fast${i}`]).toBeLessThan(1000);
    expect(finished['hang']).toBeGreaterThanOrEqual(1900);
  });
});
