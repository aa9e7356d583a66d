import { connect, type ConnectionOptions, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '@homelab/logging';
import { NATS_USERS, inboxPrefixFor, readNatsSecrets, type NatsUser } from './credentials.ts';

export interface BusOptions {
  /** Comma-separated NATS URLs, as in `NATS_URL`. */
  servers: string;
  /** Connection name, shown by the server's monitoring: the service name. */
  name: string;
  log: Logger;
  user?: string;
  password?: string;
  /** Prefix for this connection's reply inboxes; per-service prefixes let nats.conf keep one service's replies from another. */
  inboxPrefix?: string;
  /** Called when the connection changes state, e.g. to flip readiness. */
  onStatus?: (connected: boolean) => void;
  /** For tests: give up after this many initial attempts instead of retrying forever. */
  maxInitialAttempts?: number;
  signal?: AbortSignal;
}

/**
 * Connection credentials from the environment: `NATS_USER` with `NATS_PASSWORD`, or with
 * `NATS_PASSWORDS_FILE` (the generated passwords file, e.g. a compose secret). No user means the
 * server's `no_auth_user`.
 */
export function busCredentialsFromEnv(env: NodeJS.ProcessEnv = process.env, service?: string): Pick<BusOptions, 'user' | 'password'> {
  // Several services in one process (HOMELAB_PROCESSES=shared) share its environment: each is then
  // the NATS user of its own name, with its password from the passwords file.
  const user = env['NATS_USER'] ?? (env['NATS_PASSWORDS_FILE'] && (NATS_USERS as readonly string[]).includes(service ?? '') ? service : undefined);
  if (!user) return {};
  const password = env['NATS_PASSWORD'] ?? (env['NATS_PASSWORDS_FILE'] ? readNatsSecrets(env['NATS_PASSWORDS_FILE'])[user as NatsUser] : undefined);
  return { user, ...(password !== undefined && { password }) };
}

const BACKOFF_MS = [250, 500, 1000, 2000, 5000, 10_000];

/**
 * Connects to NATS, retrying the first connection with backoff until it succeeds (one log line
 * when the series starts, one when it ends), then reconnecting forever: a NATS restart under a
 * running service is survived with its subscriptions intact.
 */
export async function connectBus(options: BusOptions): Promise<NatsConnection> {
  const { log } = options;
  const servers = options.servers.split(',').map((s) => s.trim()).filter(Boolean);
  const natsOptions: ConnectionOptions = {
    servers,
    name: options.name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    reconnectJitter: 250,
    pingInterval: 10_000,
    maxPingOut: 3,
    ...(options.user !== undefined && { user: options.user }),
    ...(options.password !== undefined && { pass: options.password }),
    inboxPrefix: options.inboxPrefix ?? inboxPrefixFor(options.user),
  };
  let attempt = 0;
  for (;;) {
    try {
      const nc = await connect(natsOptions);
      if (attempt > 0) log.info({ attempts: attempt + 1, server: nc.getServer() }, 'connected to NATS');
      else log.info({ server: nc.getServer() }, 'connected to NATS');
      options.onStatus?.(true);
      void watchStatus(nc, options);
      return nc;
    } catch (err) {
      const code = (err as { code?: string }).code;
      // Wrong credentials will not fix themselves: fail so the operator sees it.
      if (code === 'AUTHORIZATION_VIOLATION' || /authorization/i.test(String((err as Error).message))) {
        throw new Error(`NATS refused ${options.user ? `user '${options.user}'` : 'the anonymous user'}: ${(err as Error).message}`, { cause: err });
      }
      attempt++;
      if (attempt === 1) log.warn({ servers, err: (err as Error).message }, 'NATS unreachable; retrying with backoff');
      if (options.maxInitialAttempts !== undefined && attempt >= options.maxInitialAttempts) throw err;
      if (options.signal?.aborted) throw err;
      await new Promise((r) => setTimeout(r, BACKOFF_MS[Math.min(attempt - 1, BACKOFF_MS.length - 1)]));
    }
  }
}

async function watchStatus(nc: NatsConnection, { log, onStatus }: BusOptions): Promise<void> {
  for await (const s of nc.status()) {
    switch (s.type) {
      case 'disconnect':
        log.warn({ server: s.server }, 'NATS disconnected; reconnecting');
        onStatus?.(false);
        break;
      case 'reconnect':
        log.info({ server: s.server }, 'NATS reconnected');
        onStatus?.(true);
        break;
      case 'error':
        log.error({ err: s.error.message }, 'NATS error');
        break;
      case 'slowConsumer':
        log.warn({ subject: s.sub.getSubject(), pending: s.pending }, 'NATS slow consumer');
        break;
      default:
        break;
    }
  }
}
