import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNatsServer, startServiceProcess, type TestNatsServer } from '@homelab/testing';
import { freePorts, minimalLabYaml, startCli } from './helpers/homelab-cli.ts';

// A service that cannot start for a reason a restart cannot fix says what to do in one line and
// exits 78; the stack stops restarting it, and `npm start` exits non-zero when the lab cannot serve.

let dir: string;
let nats: TestNatsServer;
let taken: Server;
let takenPort: number;
const held = new Set<Socket>();
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'homelab-start-failures-'));
  nats = await startNatsServer();
  // Holds the port; whatever connects to it (the health probe of the gateway) is let go at the end.
  taken = createServer((socket) => { held.add(socket); socket.on('close', () => held.delete(socket)); });
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
  takenPort = (taken.address() as { port: number }).port;
});
afterAll(async () => {
  for (const socket of held) socket.destroy();
  await new Promise((r) => taken?.close(r));
  await nats?.[Symbol.asyncDispose]();
  rmSync(dir, { recursive: true, force: true });
});

describe('a port in use', () => {
  it('the ingress exits 78 with one line that says which port and what to do', { timeout: 30_000 }, async () => {
    const [metrics] = await freePorts(1);
    const config = join(dir, 'ingress.yaml');
    writeFileSync(config, minimalLabYaml({ gatewayPort: takenPort, metricsPort: metrics!, mediaPath: dir }));
    const ingress = await startServiceProcess('ingress', { nats, waitReady: false, env: { HOMELAB_CONFIG: config, HOMELAB_AUTH: 'none', HOMELAB_RUN_COMMAND: 'npm start' } });
    expect(await ingress.stop('SIGCONT')).toBe(78);
    const fatal = ingress.logs.filter((l) => l['level'] === 'fatal');
    expect(fatal).toHaveLength(1);
    expect(fatal[0]!['msg']).toBe(`port ${takenPort} is already in use on 127.0.0.1, so the HTTP API cannot listen there; use another port: PORT=${takenPort + 1} npm start`);
    expect(fatal[0]).not.toHaveProperty('err');
    expect(ingress.stderr()).toBe('');
  });

  it('an invalid config: 78 and one line naming the file and the field', { timeout: 30_000 }, async () => {
    const config = join(dir, 'bad.yaml');
    writeFileSync(config, 'gateway: { port: "eighty" }\nnodes: {}\n');
    const router = await startServiceProcess('router', { nats, waitReady: false, env: { HOMELAB_CONFIG: config } });
    expect(await router.stop('SIGCONT')).toBe(78);
    const fatal = router.logs.filter((l) => l['level'] === 'fatal');
    expect(fatal.map((l) => l['msg'])).toEqual([`${config}: gateway.port: Expected integer; fix the config and start again`]);
  });

  it('npm start: the supervisor does not restart it, says so, stops the lab and exits 78', { timeout: 90_000 }, async () => {
    const [natsPort, metrics] = await freePorts(2);
    const config = join(dir, 'lab.yaml');
    writeFileSync(config, minimalLabYaml({ gatewayPort: takenPort, metricsPort: metrics!, mediaPath: dir }));
    const start = startCli(['start'], {
      HOMELAB_CONFIG: config, HOMELAB_AUTH: 'none', NATS_PORT: String(natsPort), HOMELAB_DATA_DIR: join(dir, 'data'), HOMELAB_SECRETS_DIR: join(dir, 'secrets'),
    });
    try {
      expect(await start.exited).toBe(78);
    } finally {
      await start.stop();
    }
    const out = start.output();
    expect(out).toContain(`ingress cannot start and will not be restarted: port ${takenPort} is already in use on 127.0.0.1, so the HTTP API cannot listen there; use another port: PORT=${takenPort + 1} npm start`);
    expect(out).toMatch(/the lab cannot run: ingress cannot start/);
    expect(out).not.toMatch(/ingress exited .*restarting in/);
    expect(out).not.toMatch(/EADDRINUSE/);
  });
});
