import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeNatsSecrets } from '@homelab/bus';
import { connectionErrors, startNatsServer, type TestNatsServer } from '@homelab/testing';
import { UnreachableError, connectToLab, credentialAttempts } from './command.ts';

// How a `homelab` command finds its NATS identity now that the lab has no anonymous access: the
// environment's credentials, else the `scripts` password of the lab's secrets, then the demo's,
// then none (a NATS without auth).

let dir: string;
let nats: TestNatsServer;
/** A lab's secrets folder with other passwords than the running server's (another lab's). */
let otherSecrets: string;
/** A demo folder whose secrets are the running server's. */
let demoDir: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'homelab-command-'));
  nats = await startNatsServer();
  otherSecrets = join(dir, 'other-lab', 'secrets');
  writeNatsSecrets(join(otherSecrets, 'nats-passwords.conf'), { cost: 4 });
  demoDir = join(dir, 'demo');
  mkdirSync(join(demoDir, 'secrets'), { recursive: true });
  copyFileSync(nats.passwordsFile, join(demoDir, 'secrets', 'nats-passwords.conf'));
});
afterAll(async () => {
  await nats?.[Symbol.asyncDispose]();
  rmSync(dir, { recursive: true, force: true });
});

const nowhere = (): string => join(dir, 'nothing-here');

describe('the credentials a homelab command tries', () => {
  it('scripts: the environment\'s alone when it sets them; else the lab\'s secrets, the demo\'s, then none', () => {
    expect(credentialAttempts({ NATS_USER: 'scripts', NATS_PASSWORD: 'p', HOMELAB_SECRETS_DIR: otherSecrets }, 'scripts')).toEqual([{ user: 'scripts', pass: 'p', from: 'NATS_PASSWORD' }]);
    expect(credentialAttempts({ NATS_PASSWORD: 'p' }, 'scripts')).toEqual([{ user: 'scripts', pass: 'p', from: 'NATS_PASSWORD' }]);
    const tried = credentialAttempts({ HOMELAB_SECRETS_DIR: otherSecrets, HOMELAB_DEMO_DIR: demoDir }, 'scripts');
    expect(tried.map((a) => [a.user, a.from])).toEqual([
      ['scripts', join(otherSecrets, 'nats-passwords.conf')], ['scripts', join(demoDir, 'secrets', 'nats-passwords.conf')], [undefined, 'no credentials'],
    ]);
    expect(tried[1]!.pass).toBe(nats.passwords.scripts);
    expect(credentialAttempts({ HOMELAB_SECRETS_DIR: nowhere(), HOMELAB_DEMO_DIR: nowhere() }, 'scripts')).toEqual([{ from: 'no credentials' }]);
  });

  it('admin: never without a password', () => {
    expect(credentialAttempts({ HOMELAB_SECRETS_DIR: otherSecrets, HOMELAB_DEMO_DIR: demoDir }, 'admin').map((a) => a.user)).toEqual(['admin', 'admin']);
    expect(credentialAttempts({ HOMELAB_SECRETS_DIR: nowhere(), HOMELAB_DEMO_DIR: nowhere() }, 'admin')).toEqual([]);
  });
});

describe('connectToLab as scripts', () => {
  it('the lab\'s password refused (another lab\'s), the demo\'s accepted: connected as scripts', async () => {
    const nc = await connectToLab({ NATS_URL: nats.url, HOMELAB_SECRETS_DIR: otherSecrets, HOMELAB_DEMO_DIR: demoDir }, 'scripts');
    try {
      // Only the scripts user may make this subscription (and anonymous connections are refused).
      const errors = connectionErrors(nc);
      nc.subscribe('health.>');
      await nc.flush();
      expect(errors).toEqual([]);
    } finally {
      await nc.close();
    }
  });

  it('NATS_USER and NATS_PASSWORD from the environment', async () => {
    const nc = await connectToLab({ NATS_URL: nats.url, NATS_USER: 'scripts', NATS_PASSWORD: nats.passwords.scripts, HOMELAB_SECRETS_DIR: nowhere(), HOMELAB_DEMO_DIR: nowhere() }, 'scripts');
    await nc.close();
  });

  it('every password refused, and no credentials refused: exit 2\'s error says what it tried and what to do', async () => {
    const err = await connectToLab({ NATS_URL: nats.url, HOMELAB_SECRETS_DIR: otherSecrets, HOMELAB_DEMO_DIR: nowhere() }, 'scripts').then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(UnreachableError);
    expect((err as Error).message).toMatch(new RegExp(`refused the scripts identity \\(tried: ${join(otherSecrets, 'nats-passwords.conf')}, no credentials\\)`));
    expect((err as Error).message).toMatch(/run `homelab setup`.*or set NATS_USER and NATS_PASSWORD/);
    expect((err as Error).message).not.toContain(nats.passwords.scripts);
  });

  it('a NATS without auth (an external one): connected without credentials', async () => {
    const conf = join(dir, 'no-auth.conf');
    writeFileSync(conf, 'max_payload: 1MB\n');
    await using open = await startNatsServer({ config: conf });
    const nc = await connectToLab({ NATS_URL: open.url, HOMELAB_SECRETS_DIR: nowhere(), HOMELAB_DEMO_DIR: nowhere() }, 'scripts');
    await nc.flush();
    await nc.close();
  });
});
