import { mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '@nats-io/transport-node';
import { PROJECT_NATS_CONF, connectAs, startNatsServer, type TestNatsServer } from '@homelab/testing';
import { NATS_USERS, ensureNatsSecrets, hashesFileFor, passwordVariable, readNatsSecrets, writeNatsSecrets } from './credentials.ts';

let dir: string;
beforeAll(() => { dir = mkdtempSync(join(tmpdir(), 'homelab-secrets-')); });
afterAll(() => { rmSync(dir, { recursive: true, force: true }); });

const hashesOf = (file: string): Record<string, string> =>
  Object.fromEntries([...readFileSync(file, 'utf8').matchAll(/^(HOMELAB_NATS_PASS_\w+):\s*"([^"]*)"/gm)].map((m) => [m[1]!, m[2]!]));

describe('NATS secrets', () => {
  it('the server\'s file holds bcrypt hashes only; the clear passwords are where the services read them, mode 600', () => {
    const file = join(dir, 'a', '.secrets', 'nats-passwords.conf');
    const passwords = writeNatsSecrets(file, { cost: 4 });
    const hashes = hashesOf(hashesFileFor(file));
    expect(Object.keys(hashes)).toEqual(NATS_USERS.map(passwordVariable));
    for (const user of NATS_USERS) {
      const hash = hashes[passwordVariable(user)]!;
      expect(hash).toMatch(/^\$2[aby]\$04\$/);
      expect(bcrypt.compareSync(passwords[user], hash)).toBe(true);
    }
    const serverText = readFileSync(hashesFileFor(file), 'utf8');
    for (const password of Object.values(passwords)) expect(serverText).not.toContain(password);
    expect(readNatsSecrets(file)).toEqual(passwords);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(hashesFileFor(file)).mode & 0o777).toBe(0o600);
  });

  it('a passwords file from before hashes gets its hashes, and keeps its passwords', () => {
    const file = join(dir, 'b', 'nats-passwords.conf');
    const before = writeNatsSecrets(file, { cost: 4 });
    rmSync(hashesFileFor(file));
    expect(ensureNatsSecrets(file, { cost: 4 })).toEqual(before);
    const hashes = hashesOf(hashesFileFor(file));
    expect(bcrypt.compareSync(before.router, hashes[passwordVariable('router')]!)).toBe(true);
    // Passwords edited after the hashes were made (newer file): hashed again.
    writeFileSync(file, readFileSync(file, 'utf8').replace(before.router, 'a-new-router-password'));
    const later = new Date(Date.now() + 5000);
    utimesSync(file, later, later);
    expect(ensureNatsSecrets(file, { cost: 4 }).router).toBe('a-new-router-password');
    expect(bcrypt.compareSync('a-new-router-password', hashesOf(hashesFileFor(file))[passwordVariable('router')]!)).toBe(true);
  });
});

describe('nats-server with the hashed passwords', () => {
  let nats: TestNatsServer;
  beforeAll(async () => { nats = await startNatsServer(); });
  afterAll(async () => { await nats?.[Symbol.asyncDispose](); });

  it('accepts each service\'s clear password against its hash; anonymous connections still work', async () => {
    await using router = await connectAs(nats, 'router');
    await router.flush();
    await expect(connectAs(nats, 'admin').then((nc) => nc.close())).resolves.toBeUndefined();
    const anonymous = await connect({ servers: nats.url });
    await anonymous.flush();
    await anonymous.close();
    expect(nats.log()).toMatch(/Server is ready/);
  });

  it('no plaintext password warning for the users with passwords: only the password-less anonymous user is flagged by 2.9', async () => {
    // nats-server 2.9 cannot map an anonymous connection (no_auth_user) onto a user whose password is a
    // bcrypt hash, and counts a user without a password as "plaintext". The same config without that
    // one user starts without the warning: every password it holds is a hash.
    const conf = readFileSync(PROJECT_NATS_CONF, 'utf8');
    const withoutAnonymous = conf.replace(/\n\s*\{\n(\s*#[^\n]*\n)*\s*user: anonymous\n[^}]*\}/, '').replace(/^no_auth_user: anonymous$/m, '');
    expect(withoutAnonymous.split('\n').filter((l) => !l.trim().startsWith('#')).join('\n')).not.toMatch(/user: anonymous|no_auth_user/);
    const file = join(dir, 'hashed-only.conf');
    writeFileSync(file, withoutAnonymous);
    await using hashedOnly = await startNatsServer({ config: file });
    await using router = await connectAs(hashedOnly, 'router');
    await router.flush();
    expect(hashedOnly.log()).toMatch(/Server is ready/);
    expect(hashedOnly.log()).not.toMatch(/plaintext password/i);
  });
});
