import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { natsConfigDir, selectedNatsContext, writeNatsContext } from './nats-context.ts';

// The nats CLI's contexts (natscli's natscontext: `<config>/nats/context/<name>.json` with `url`,
// `user`, `password`, `description`; `<config>/nats/context.txt` the selected one), written in a
// temporary HOME / XDG_CONFIG_HOME, never the real one.

let dir: string;
beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'homelab-nats-context-')); });
afterEach(() => { rmSync(dir, { recursive: true, force: true }); });

const settings = { description: 'the lab', url: 'nats://127.0.0.1:4222', user: 'scripts', password: 's3cret' };

describe('writeNatsContext', () => {
  it('XDG_CONFIG_HOME/nats/context/NAME.json, mode 600 in a 700 folder, with the fields the nats CLI reads; selected when none is', () => {
    const env = { XDG_CONFIG_HOME: join(dir, 'xdg'), HOME: join(dir, 'home') };
    const written = writeNatsContext(env, 'homelab', settings, { select: 'if-none' });
    expect(written).toEqual({ file: join(dir, 'xdg', 'nats', 'context', 'homelab.json'), selected: true });
    expect(JSON.parse(readFileSync(written.file, 'utf8'))).toEqual(settings);
    expect(statSync(written.file).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'xdg', 'nats', 'context')).mode & 0o777).toBe(0o700);
    expect(readFileSync(join(dir, 'xdg', 'nats', 'context.txt'), 'utf8')).toBe('homelab');
    expect(statSync(join(dir, 'xdg', 'nats', 'context.txt')).mode & 0o777).toBe(0o600);
    expect(selectedNatsContext(env)).toBe('homelab');
  });

  it('without XDG_CONFIG_HOME: HOME/.config/nats', () => {
    const env = { HOME: join(dir, 'home') };
    expect(natsConfigDir(env)).toBe(join(dir, 'home', '.config', 'nats'));
    expect(writeNatsContext(env, 'homelab', settings).file).toBe(join(dir, 'home', '.config', 'nats', 'context', 'homelab.json'));
  });

  it('never replaces a selected context; `never` does not select; an existing file keeps the fields a person added, and gets mode 600', () => {
    const env = { XDG_CONFIG_HOME: dir };
    mkdirSync(join(dir, 'nats', 'context'), { recursive: true });
    writeFileSync(join(dir, 'nats', 'context.txt'), 'work\n');
    const file = join(dir, 'nats', 'context', 'homelab.json');
    writeFileSync(file, JSON.stringify({ url: 'nats://old:4222', password: 'old', ca: '/etc/ca.pem' }), { mode: 0o644 });
    expect(writeNatsContext(env, 'homelab', settings, { select: 'if-none' })).toEqual({ file, selected: false, otherSelected: 'work' });
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ ...settings, ca: '/etc/ca.pem' });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(selectedNatsContext(env)).toBe('work');

    const fresh = { XDG_CONFIG_HOME: join(dir, 'fresh') };
    expect(writeNatsContext(fresh, 'homelab-demo', settings, { select: 'never' }).selected).toBe(false);
    expect(selectedNatsContext(fresh)).toBeUndefined();
  });

  it('refuses a name that would leave the context folder', () => {
    expect(() => writeNatsContext({ XDG_CONFIG_HOME: dir }, '../evil', settings)).toThrow(/invalid nats context name/);
  });
});
