import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/*
 * Contexts of the `nats` CLI (natscli's natscontext package): one JSON file per context in
 * `$XDG_CONFIG_HOME/nats/context/<name>.json` (else `~/.config/…`), with the fields `description`,
 * `url`, `user`, `password` among others; `nats/context.txt` names the selected one. natscli makes
 * the folders 0700 and the files 0600; so do we, since the file holds a password.
 */

/** The lab's context, written by `homelab setup`; the demo's, written when the demo starts. */
export const LAB_NATS_CONTEXT = 'homelab';
export const DEMO_NATS_CONTEXT = 'homelab-demo';

export interface NatsContextSettings {
  description: string;
  url: string;
  user: string;
  password: string;
}

export interface WrittenNatsContext {
  file: string;
  /** Whether this call made it the selected context (only when none was selected). */
  selected: boolean;
  /** The context selected before (and still), when it was another one. */
  otherSelected?: string;
}

/** `$XDG_CONFIG_HOME/nats`, else `$HOME/.config/nats`: where the nats CLI reads its contexts. */
export function natsConfigDir(env: NodeJS.ProcessEnv): string {
  return join(env['XDG_CONFIG_HOME'] || join(env['HOME'] || homedir(), '.config'), 'nats');
}

/** The context selected in the nats CLI (`nats context select`), if any. */
export function selectedNatsContext(env: NodeJS.ProcessEnv): string | undefined {
  const file = join(natsConfigDir(env), 'context.txt');
  if (!existsSync(file)) return undefined;
  return readFileSync(file, 'utf8').trim() || undefined;
}

/**
 * Writes (or updates) context `name`: url, user, password and description are ours; any other field
 * a person added to the file (tls, a JetStream domain) is kept. `select: 'if-none'` selects it when no
 * context is selected yet, never replacing a person's choice.
 */
export function writeNatsContext(env: NodeJS.ProcessEnv, name: string, settings: NatsContextSettings, options: { select?: 'if-none' | 'never' } = {}): WrittenNatsContext {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name) || name.includes('..')) throw new Error(`invalid nats context name '${name}'`);
  const dir = join(natsConfigDir(env), 'context');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, `${name}.json`);
  writePrivate(file, `${JSON.stringify({ ...existingFields(file), ...settings }, null, 2)}\n`);
  const current = selectedNatsContext(env);
  if (current) return { file, selected: false, ...(current !== name && { otherSelected: current }) };
  if (options.select !== 'if-none') return { file, selected: false };
  writePrivate(join(natsConfigDir(env), 'context.txt'), name);
  return { file, selected: true };
}

function existingFields(file: string): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(readFileSync(file, 'utf8'));
    return parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? parsed as Record<string, unknown> : {};
  } catch {
    return {}; // none yet, or not JSON: written anew
  }
}

/** Mode 600 even when the file existed with another mode (writeFileSync's mode applies only to new files). */
function writePrivate(file: string, text: string): void {
  writeFileSync(file, text, { mode: 0o600 });
  chmodSync(file, 0o600);
}
