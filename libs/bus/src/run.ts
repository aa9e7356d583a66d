import { hostname } from 'node:os';
import type { NatsConnection } from '@nats-io/transport-node';
import { ConfigError, loadConfig, type LabConfig } from '@homelab/config';
import { createLogger, type Logger } from '@homelab/logging';
import { initTracing, type Tracing } from '@homelab/tracing';
import { busCredentialsFromEnv, connectBus } from './connect.ts';
import { inboxPrefixOf } from './credentials.ts';
import { ensureStreams, EventPublisher } from './events.ts';
import { ReplyMux } from './requester.ts';
import { Streams } from './subjects.ts';
import { MicroService } from './service.ts';
import { EXIT_CANNOT_START, cannotStartReason } from './startup.ts';

export interface ServiceContext {
  config: LabConfig;
  log: Logger;
  nc: NatsConnection;
  /** This process's `$SRV` registration: add endpoints to it. */
  service: MicroService;
  /** The process's one reply mux: every request this service makes waits for its reply here. */
  mux: ReplyMux;
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
  const tracing = await initTracing(options.name, { version: options.version ?? VERSION });
  for (const line of config.notConfigured) if (line.area === options.configArea) log.info(`not configured: ${line.message}`);
  const lifecycle = processLifecycle(sharedProcessName ? createLogger({ service: sharedProcessName }) : log);

  // Filled in as start-up proceeds; a signal may arrive at any point of it.
  const running: { nc?: NatsConnection; service?: MicroService; mux?: ReplyMux; onStop?: (() => Promise<void> | void) | void; stopped?: boolean } = {};
  const stop = async (): Promise<void> => {
    if (running.stopped) return;
    running.stopped = true;
    await running.service?.stop();
    // The service's own steps failing (thrown or rejected) must not skip closing the connection.
    try {
      await running.onStop?.();
    } catch (err) {
      log.error({ err }, 'error while stopping the service');
    }
    running.mux?.close();
    if (running.nc && !running.nc.isClosed()) await running.nc.drain();
    await tracing.shutdown();
  };
  lifecycle.add(async () => {
    if (running.stopped) return;
    log.info('shutting down');
    await stop().catch((err: unknown) => log.error({ err }, 'error while shutting down'));
  });

  try {
    await options.beforeConnect?.({ config, log, tracing });
    const nc = await connectBus({
      servers: config.nats.url, name: options.name, log, ...busCredentialsFromEnv(process.env, options.name),
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
    }, log, () => ({ faults: lifecycle.faults }));
    running.service = service;
    const mux = new ReplyMux(nc, inboxPrefixOf(nc));
    running.mux = mux;
    const events = new EventPublisher(nc, mux, (subject, error) => log.warn({ subject, err: error.message }, 'an event could not be stored'));
    running.onStop = await options.start({ config, log, nc, service, mux, events, tracing });
    service.announce();
  } catch (err) {
    // A signal during start-up drains the connection under the starting service: its failure is
    // the shutdown's doing, and the shutdown in progress ends the process (with 0).
    if (lifecycle.stopping) return new Promise<void>(() => {});
    // In a shared process the others run on: this service's connection and endpoints must go with it.
    if (sharedProcessName) await stop().catch(() => {});
    throw err;
  }
  log.info('started');
}

interface ProcessLifecycle {
  /** Registers a service's shutdown; a signal runs every registered one, then the process exits 0. */
  add(stop: () => Promise<void>): void;
  readonly stopping: boolean;
  /** Faults that escaped a request (uncaught exceptions, unhandled rejections) since the process started. */
  readonly faults: number;
}

let lifecycleOfProcess: ProcessLifecycle | undefined;
let sharedProcessName: string | undefined;

/**
 * This process runs several services (HOMELAB_PROCESSES=shared, cli/src/shared-process.ts): what
 * belongs to the process (signals, faults that escape a request) is logged under `name`, not under
 * whichever service started first; and a service that cannot start stops what it had started and
 * rejects (after its one fatal line), instead of ending the process and every other service in it.
 */
export function shareProcess(name: string): void {
  sharedProcessName = name;
}

/**
 * What belongs to the process, not to one service (several services may share a process): the
 * signal handlers, and the guard that keeps one request's fault from ending the process. A fault
 * that escapes its request's own handling is a bug: it is logged with its stack and counted (the
 * `faults` of `$SRV.STATS`, a metric in telemetry), and every other request in flight goes on.
 */
function processLifecycle(log: Logger): ProcessLifecycle {
  if (lifecycleOfProcess) return lifecycleOfProcess;
  const stops: (() => Promise<void>)[] = [];
  const state = { stopping: false, faults: 0 };
  const shutdown = async (signal: string): Promise<void> => {
    if (state.stopping) return;
    state.stopping = true;
    log.info({ signal }, 'signal received');
    const force = setTimeout(() => { log.warn('shutdown took too long; exiting'); process.exit(1); }, 30_000);
    force.unref();
    await Promise.all(stops.map((stop) => stop()));
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
  const onFault = (kind: string) => (err: unknown): void => {
    state.faults++;
    log.error({ err, kind, faults: state.faults }, 'a fault escaped its request (a bug): logged and counted, the service goes on');
  };
  process.on('uncaughtException', onFault('uncaughtException'));
  process.on('unhandledRejection', onFault('unhandledRejection'));
  lifecycleOfProcess = {
    add: (stop) => { stops.push(stop); },
    get stopping() { return state.stopping; },
    get faults() { return state.faults; },
  };
  return lifecycleOfProcess;
}

/**
 * `runService(...).catch(exitOnStartFailure(name))`: a failure a restart cannot fix (a port in use, an
 * invalid config, a missing permission) is one line saying what to do and exit code 78
 * (EXIT_CANNOT_START); anything else is logged with its stack and ends the process with 1.
 */
export function exitOnStartFailure(name: string): (err: unknown) => never {
  return (err: unknown) => {
    const reason = cannotStartReason(err);
    if (reason) createLogger({ service: name }).fatal(reason);
    else createLogger({ service: name }).fatal({ err }, 'failed to start');
    // Not this service's process to end when it shares it with others (shareProcess): the caller decides.
    if (sharedProcessName) throw err;
    process.exit(reason ? EXIT_CANNOT_START : 1);
  };
}
