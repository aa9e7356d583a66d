import { ConfigError } from '@homelab/config';

/*
 * Failures at start that a restart cannot fix: a port in use, an invalid config, a missing
 * permission, credentials NATS refuses. The service exits with EXIT_CANNOT_START and one line that
 * says what to do; the stack's supervisor (and systemd's RestartPreventExitStatus) stop restarting it.
 */

/** sysexits.h EX_CONFIG: "something was found in an unconfigured or misconfigured state". */
export const EXIT_CANNOT_START = 78;

export class CannotStartError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CannotStartError';
  }
}

export interface ListenTarget {
  /** What listens there, for the message: `the HTTP API`, `/metrics`. */
  what: string;
  host: string;
  port: number;
  /** The environment variable that sets this port (`PORT`, `METRICS_PORT`). */
  variable: string;
}

/** How the person ran the lab (`npm start`, `npm run demo`), set by the stack runner; for the hint. */
function runCommand(env: NodeJS.ProcessEnv): string | undefined {
  return env['HOMELAB_RUN_COMMAND'] || undefined;
}

/** `PORT=8081 npm start`, or `PORT=8081` alone when the service was not started by the stack runner. */
function withPort(variable: string, port: number, env: NodeJS.ProcessEnv): string {
  const command = runCommand(env);
  return `${variable}=${port}${command ? ` ${command}` : ''}`;
}

/** A listen() failure as one line that says what to do, or the error itself when it is not one of those. */
export function explainListenFailure(err: unknown, target: ListenTarget, env: NodeJS.ProcessEnv = process.env): Error {
  const code = (err as NodeJS.ErrnoException).code;
  const where = `${target.host}:${target.port}`;
  switch (code) {
    case 'EADDRINUSE':
      return new CannotStartError(`port ${target.port} is already in use on ${target.host}, so ${target.what} cannot listen there; use another port: ${withPort(target.variable, target.port + 1, env)}`, { cause: err });
    case 'EACCES':
    case 'EPERM': {
      const low = target.port > 0 && target.port < 1024;
      const next = low ? 8000 + target.port : target.port + 1;
      return new CannotStartError(`no permission to listen on ${where} for ${target.what}${low ? ' (ports below 1024 need root or CAP_NET_BIND_SERVICE)' : ''}; use another port: ${withPort(target.variable, next, env)}`, { cause: err });
    }
    case 'EADDRNOTAVAIL':
      return new CannotStartError(`${target.host} is not an address of this machine, so ${target.what} cannot listen on ${where}; set its host to one of this machine's addresses (127.0.0.1, or 0.0.0.0 for all)`, { cause: err });
    default:
      return err instanceof Error ? err : new Error(String(err));
  }
}

/** Runs a listen, turning the failures a restart cannot fix into a CannotStartError that says what to do. */
export async function listenOrExplain<T>(listen: () => Promise<T>, target: ListenTarget): Promise<T> {
  try {
    return await listen();
  } catch (err) {
    throw explainListenFailure(err, target);
  }
}

/** The one-line reason when `err` is a failure a restart cannot fix; undefined for anything else (a crash). */
export function cannotStartReason(err: unknown): string | undefined {
  if (err instanceof CannotStartError) return err.message;
  if (err instanceof ConfigError) return `${err.message}; fix the config and start again`;
  const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
  if (e?.code === 'EADDRINUSE' || e?.code === 'EADDRNOTAVAIL') {
    return explainListenFailure(e, { what: 'the service', host: e.address ?? '?', port: e.port ?? 0, variable: 'the port setting' }).message;
  }
  if (e?.code === 'EACCES' || e?.code === 'EPERM') return `permission denied: ${e.message}; give the service's user access, or point the setting elsewhere`;
  if (e instanceof Error && /^NATS refused /.test(e.message)) {
    return `${e.message}; its password must match .secrets/nats-passwords.conf (NATS_USER, NATS_PASSWORD or NATS_PASSWORDS_FILE; \`homelab setup\` writes them)`;
  }
  return undefined;
}
