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

describe('nats-server with the project\'s nats.conf and the hashed passwords', () => {
  let nats: TestNatsServer;
  beforeAll(async () => { nats = await startNatsServer(); });
  afterAll(async () => { await nats?.[Symbol.asyncDispose](); });

  it('starts without a plaintext password warning: every user has a password, each one a bcrypt hash', async () => {
    // nats-server flags every user whose password is not a bcrypt hash, an empty one included (a
    // password-less user for no_auth_user was the last one): nats.conf has none.
    expect(nats.log()).toMatch(/Server is ready/);
    expect(nats.log()).not.toMatch(/plaintext password/i);
    expect(nats.log()).not.toMatch(/\[WRN\]/);
    const conf = readFileSync(PROJECT_NATS_CONF, 'utf8').split('\n').filter((l) => !l.trim().startsWith('#')).join('\n');
    expect(conf).not.toMatch(/no_auth_user|user: anonymous/);
  });

  it('accepts each user\'s clear password against its hash, and refuses a wrong one', async () => {
    for (const user of NATS_USERS) {
      await using nc = await connectAs(nats, user);
      await nc.flush();
    }
    await expect(connect({ servers: nats.url, user: 'scripts', pass: nats.passwords.router })).rejects.toThrow(/authorization/i);
  });
});
