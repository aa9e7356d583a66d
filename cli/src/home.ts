import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NATS_HASHES_FILE } from '@homelab/bus/credentials';

/*
 * Where a stack keeps its state. The lab (`npm start`) and the demo (`npm run demo`) each have their
 * own JetStream store and their own NATS passwords, so nothing made in one (an API key, a health
 * record, a usage ledger) is ever seen by the other.
 */

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const PROJECT_NATS_CONF = join(REPO_ROOT, 'nats.conf');

export interface StackHome {
  kind: 'lab' | 'demo';
  /** The NATS passwords (clear, for the services) and their bcrypt hashes (for nats-server). */
  secretsDir: string;
  passwordsFile: string;
  hashesFile: string;
  /** JetStream's store and whatever else the stack writes. */
  dataDir: string;
}

function home(kind: StackHome['kind'], secretsDir: string, dataDir: string): StackHome {
  return { kind, secretsDir, dataDir, passwordsFile: join(secretsDir, 'nats-passwords.conf'), hashesFile: join(secretsDir, NATS_HASHES_FILE) };
}

/** The lab's: `.secrets/` and `.data/` of the checkout, or `HOMELAB_SECRETS_DIR` and `HOMELAB_DATA_DIR`. */
export function labHome(env: NodeJS.ProcessEnv): StackHome {
  return home('lab', env['HOMELAB_SECRETS_DIR'] || join(REPO_ROOT, '.secrets'), env['HOMELAB_DATA_DIR'] || join(REPO_ROOT, '.data'));
}

/** The demo's folder: `.demo/` of the checkout, or `HOMELAB_DEMO_DIR`. The lab's settings are never used for it. */
export function demoRoot(env: NodeJS.ProcessEnv): string {
  return env['HOMELAB_DEMO_DIR'] || join(REPO_ROOT, '.demo');
}

export function demoHome(env: NodeJS.ProcessEnv): StackHome {
  const root = demoRoot(env);
  return home('demo', join(root, 'secrets'), join(root, 'data'));
}

/** The NATS servers the lab's services and commands use: `NATS_URL`, else `nats://NATS_HOST:NATS_PORT`. */
export function natsUrlFromEnv(env: NodeJS.ProcessEnv): string {
  if (env['NATS_URL']) return env['NATS_URL'];
  return `nats://${env['NATS_HOST'] || '127.0.0.1'}:${env['NATS_PORT'] || 4222}`;
}

/**
 * The config file nats-server runs with for a home: the project's nats.conf where its include
 * (`./.secrets/nats-hashes.conf`, relative to nats.conf) is this home's hashes; otherwise a copy in the
 * data folder whose include points at them (nats-server resolves includes relative to the file).
 */
export function natsServerConfig(stackHome: StackHome): string {
  if (stackHome.hashesFile === join(REPO_ROOT, '.secrets', NATS_HASHES_FILE)) return PROJECT_NATS_CONF;
  const file = join(stackHome.dataDir, 'nats.conf');
  mkdirSync(dirname(file), { recursive: true });
  const include = relative(dirname(file), stackHome.hashesFile);
  const text = readFileSync(PROJECT_NATS_CONF, 'utf8');
  const rewritten = text.replace(/^include \.\/\.secrets\/nats-hashes\.conf$/m, `include ${include.startsWith('.') ? include : `./${include}`}`);
  if (rewritten === text) throw new Error(`${PROJECT_NATS_CONF}: no 'include ./.secrets/nats-hashes.conf' line to point at ${stackHome.hashesFile}`);
  writeFileSync(file, `# Written by the homelab stack runner from ${PROJECT_NATS_CONF}; edit that file instead.\n${rewritten}`);
  return file;
}
