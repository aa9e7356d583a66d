import { hostname } from 'node:os';
import type { NatsConnection } from '@nats-io/transport-node';
import { ConfigError, loadConfig, type LabConfig } from '@homelab/config';
import { createLogger, type Logger } from '@homelab/logging';
import { initTracing, type Tracing } from '@homelab/tracing';
import { busCredentialsFromEnv, connectBus } from './connect.ts';
import { ensureStreams, EventPublisher } from './events.ts';
import { Streams } from './subjects.ts';
import { MicroService } from './service.ts';
import { EXIT_CANNOT_START, cannotStartReason } from './startup.ts';

export interface ServiceContext {
  config: LabConfig;
  log: Logger;
  nc: NatsConnection;
  /** This process's `$SRV` registration: add endpoints to it. */
  service: MicroService;
  events: EventPublisher;
  /** Spans per hop, exported over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set; off (and free) otherwise. */
  tracing: Tracing;
}

export interface RunServiceOptions {
  name: string;
  version?: string;
  description: string;
  /** Wires the service; returns what to do on shutdown, before the connection drains. */
  start(ctx: ServiceContext): Promise<(() => Promise<void> | void) | void>;
  /** Runs before NATS is connected (e.g. an HTTP server whose /healthz answers while NATS is down). */
  beforeConnect?(ctx: Pick<ServiceContext, 'config' | 'log' | 'tracing'>): Promise<void> | void;
  onConnectionChange?(connected: boolean): void;
  /**
   * The JetStream streams this service publishes to or consumes (names from `Streams`): it makes sure
   * they exist at start, so start order does not matter. nats.conf lets each service manage only its own.
   */
  streams?: string[];
  /** The part of the lab's config this service reports as left unconfigured at start. */
  configArea?: 'inference' | 'health' | 'media';
}

const VERSION = '0.1.0';

/**
 * Every service's main: load and validate config (exit 1 naming the file and field), connect
 * (retrying while NATS is unreachable), register on `$SRV`, ensure the event streams, then on
 * SIGTERM or SIGINT stop taking work, let the service finish what is in flight, drain, exit 0.
 */
export async function runService(options: RunServiceOptions): Promise<void> {
  const log = createLogger({ service: options.name });
  let config: LabConfig;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      // One line, and the exit code that tells a supervisor not to restart: the file must change first.
      log.fatal(cannotStartReason(err));
      process.exit(EXIT_CANNOT_START);
    }
    throw err;
  }
  const tracing = initTracing(options.name, { version: options.version ?? VERSION });
  for (const line of config.notConfigured) if (line.area === options.configArea) log.info(`not configured: ${line.message}`);

  let shuttingDown = false;
  // Filled in as start-up proceeds; a signal may arrive at any point of it.
  const running: { nc?: NatsConnection; service?: MicroService; onStop?: (() => Promise<void> | void) | void } = {};
  const shutdown = async (signal: string): Promise<void> => {
    if (shuttingDown) return;
    shuttingDown = true;
    log.info({ signal }, 'shutting down');
    const force = setTimeout(() => { log.warn('shutdown took too long; exiting'); process.exit(1); }, 30_000);
    force.unref();
    try {
      await running.service?.stop();
      await running.onStop?.();
      if (running.nc && !running.nc.isClosed()) await running.nc.drain();
      await tracing.shutdown();
    } catch (err) {
      log.error({ err }, 'error while shutting down');
    }
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));

  try {
    await options.beforeConnect?.({ config, log, tracing });
    const nc = await connectBus({
      servers: config.nats.url, name: options.name, log, ...busCredentialsFromEnv(),
      ...(options.onConnectionChange && { onStatus: options.onConnectionChange }),
    });
    if (options.streams?.length) {
      await ensureStreams(nc, { replicas: config.nats.replicas, streams: Streams.filter((s) => options.streams!.includes(s.name)) });
    }
    running.nc = nc;
    const service = new MicroService(nc, {
      name: options.name, version: options.version ?? VERSION, description: options.description,
      // Lets a probe (k8s, docs/deploy.md) tell this copy's answer from another replica's.
      metadata: { hostname: hostname() },
    }, log);
    running.service = service;
    running.onStop = await options.start({ config, log, nc, service, events: new EventPublisher(nc), tracing });
    service.announce();
  } catch (err) {
    // A signal during start-up drains the connection under the starting service: its failure is
    // the shutdown's doing, and the shutdown in progress ends the process (with 0).
    if (shuttingDown) return new Promise<void>(() => {});
    throw err;
  }
  log.info('started');
}

/**
 * `runService(...).catch(exitOnStartFailure(name))`: a failure a restart cannot fix (a port in use, an
 * invalid config, a missing permission) is one line saying what to do and exit code 78
 * (EXIT_CANNOT_START); anything else is logged with its stack and ends the process with 1.
 */
export function exitOnStartFailure(name: string): (err: unknown) => never {
  return (err: unknown) => {
    const reason = cannotStartReason(err);
    if (reason) {
      createLogger({ service: name }).fatal(reason);
      process.exit(EXIT_CANNOT_START);
    }
    createLogger({ service: name }).fatal({ err }, 'failed to start');
    process.exit(1);
  };
}
