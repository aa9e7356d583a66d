import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { nuid } from '@nats-io/transport-node';
import type { Static, TSchema } from '@sinclair/typebox';
import type { Logger } from '@homelab/logging';
import { ErrorCodes, GatewayError, toGatewayError } from './errors.ts';
import { H, createHeaders, type MsgHeaders } from './headers.ts';
import { encodeJson, parseJson, validator, type Validator } from './schemas.ts';

/*
 * The NATS micro-service protocol (ADR-32), implemented here rather than with the
 * `@nats-io/services` prerelease, which pins an older nats-core than transport-node 3.4 and
 * would load a second copy of the client. It is small: PING/INFO/STATS on `$SRV.<verb>`,
 * `$SRV.<verb>.<name>` and `$SRV.<verb>.<name>.<id>`, and error headers on replies.
 */

export interface ServiceInfo {
  name: string;
  version: string;
  description?: string;
  metadata?: Record<string, string>;
}

export interface ServiceRequest<T> {
  msg: Msg;
  /** The validated payload (parsed once, here). */
  payload: T;
  headers: MsgHeaders | undefined;
}

export interface EndpointOptions<S extends TSchema | null> {
  subject: string;
  /** Queue group; every copy of a service shares it, so each request goes to one copy. Default `q` as in the protocol. */
  queue?: string;
  /** Payload schema; `null` for header-only or raw endpoints (the handler reads `msg.data`). */
  schema: S;
  metadata?: Record<string, string>;
  /**
   * Answers the request (with `respondJson` / `respondError`, or by handing the reply subject to another
   * service). A thrown error is sent back as a service error and counted.
   */
  handler: (req: ServiceRequest<S extends TSchema ? Static<S> : null>) => void | Promise<void>;
  /** Called for every request that ends in an error reply (invalid payload included), e.g. to record it. */
  onError?: (msg: Msg, error: GatewayError) => void;
  /** The body of an error reply (default: OpenAI's error shape), e.g. in the requester's own API dialect. */
  errorBody?: (error: GatewayError) => string;
  /** The endpoint's `data` in `$SRV.STATS` replies (e.g. `{ in_flight: 3 }`), read when asked. */
  statsData?: () => Record<string, unknown>;
}

interface EndpointState {
  name: string;
  subject: string;
  queue_group: string;
  metadata: Record<string, string>;
  num_requests: number;
  num_errors: number;
  last_error: string;
  processing_time: number;
  statsData: (() => Record<string, unknown>) | undefined;
}

const encoder = new TextEncoder();

export class MicroService {
  readonly id = nuid.next();
  readonly info: ServiceInfo;
  readonly #nc: NatsConnection;
  readonly #log: Logger;
  readonly #subs: Subscription[] = [];
  readonly #endpoints: EndpointState[] = [];
  readonly #started = new Date().toISOString();
  #stopped = false;
  #announced = false;

  readonly #processStats: (() => Record<string, unknown>) | undefined;

  /** `processStats`: facts of the whole process for `$SRV.STATS` (its `data`), e.g. escaped faults. */
  constructor(nc: NatsConnection, info: ServiceInfo, log: Logger, processStats?: () => Record<string, unknown>) {
    this.#nc = nc;
    this.info = info;
    this.#log = log;
    this.#processStats = processStats;
  }

  /**
   * Answers `$SRV.PING|INFO|STATS` from now on. Called once the service's endpoints are in place,
   * so that answering PING means serving: the stack, the tests and the health service rely on it.
   */
  announce(): void {
    if (this.#announced) return;
    this.#announced = true;
    for (const verb of ['PING', 'INFO', 'STATS'] as const) {
      for (const subject of [`$SRV.${verb}`, `$SRV.${verb}.${this.info.name}`, `$SRV.${verb}.${this.info.name}.${this.id}`]) {
        this.#subs.push(this.#nc.subscribe(subject, { callback: (err, msg) => { if (!err) msg.respond(encoder.encode(JSON.stringify(this.#discovery(verb)))); } }));
      }
    }
  }

  addEndpoint<S extends TSchema | null>(name: string, options: EndpointOptions<S>): void {
    const state: EndpointState = {
      name, subject: options.subject, queue_group: options.queue ?? 'q', metadata: options.metadata ?? {},
      num_requests: 0, num_errors: 0, last_error: '', processing_time: 0, statsData: options.statsData,
    };
    this.#endpoints.push(state);
    const check: Validator<unknown> | null = options.schema ? validator(options.schema) : null;
    const handler = options.handler as (req: ServiceRequest<unknown>) => void | Promise<void>;
    const fail = (msg: Msg, err: unknown): void => {
      const gatewayError = toGatewayError(err);
      state.num_errors++;
      state.last_error = `${gatewayError.status}:${gatewayError.message}`;
      if (gatewayError.code === 'internal_error') this.#log.error({ err, endpoint: name }, 'endpoint failed');
      if (msg.reply) respondError(msg, gatewayError, undefined, options.errorBody?.(gatewayError));
      options.onError?.(msg, gatewayError);
    };
    this.#subs.push(this.#nc.subscribe(options.subject, {
      queue: state.queue_group,
      callback: (err, msg) => {
        if (err) return;
        state.num_requests++;
        const started = process.hrtime.bigint();
        const done = (): void => { state.processing_time += Number(process.hrtime.bigint() - started); };
        let payload: unknown = null;
        try {
          // An empty body is `null` for endpoints that take none; elsewhere parseJson says it is empty.
          if (check) payload = check.parse(msg.data.length === 0 && check.check(null) ? null : parseJson(msg.data));
          const result = handler({ msg, payload, headers: msg.headers });
          if (result instanceof Promise) result.then(done, (e: unknown) => { done(); fail(msg, e); });
          else done();
        } catch (e) {
          done();
          fail(msg, e);
        }
      },
    }));
  }

  /** Stops answering: unsubscribes (drains) every endpoint and the discovery subjects. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await Promise.allSettled(this.#subs.map((s) => s.drain()));
  }

  #discovery(verb: 'PING' | 'INFO' | 'STATS'): Record<string, unknown> {
    const base = { name: this.info.name, id: this.id, version: this.info.version, metadata: this.info.metadata ?? {} };
    if (verb === 'PING') return { type: 'io.nats.micro.v1.ping_response', ...base };
    if (verb === 'INFO') {
      return {
        type: 'io.nats.micro.v1.info_response', ...base, description: this.info.description ?? '',
        endpoints: this.#endpoints.map(({ name, subject, queue_group, metadata }) => ({ name, subject, queue_group, metadata })),
      };
    }
    return {
      type: 'io.nats.micro.v1.stats_response', ...base, started: this.#started,
      ...(this.#processStats && { data: this.#processStats() }),
      endpoints: this.#endpoints.map((e) => ({
        name: e.name, subject: e.subject, queue_group: e.queue_group, num_requests: e.num_requests, num_errors: e.num_errors,
        last_error: e.last_error, processing_time: e.processing_time,
        average_processing_time: e.num_requests ? Math.round(e.processing_time / e.num_requests) : 0,
        ...(e.statsData && { data: e.statsData() }),
      })),
    };
  }
}

/** Replies with JSON. */
export function respondJson(msg: Msg, value: unknown, headers?: MsgHeaders): void {
  msg.respond(encodeJson(value), headers ? { headers } : undefined);
}

/** The micro-service error headers plus OpenAI's error JSON in the body, so both NATS tools and OpenAI clients read it. */
export function errorHeaders(err: GatewayError, headers: MsgHeaders = createHeaders()): MsgHeaders {
  headers.set(H.serviceError, err.message.replace(/[\r\n]+/g, ' ').slice(0, 512));
  headers.set(H.serviceErrorCode, String(err.status));
  headers.set(H.errorCode, err.code);
  if (err.retryAfterMs !== undefined) headers.set(H.retryAfterMs, String(err.retryAfterMs));
  return headers;
}

/** An error reply: the service error headers, and the body in OpenAI's shape unless another is given (a dialect's). */
export function respondError(msg: Msg, err: GatewayError, headers?: MsgHeaders, body?: string): void {
  msg.respond(body ?? encodeJson(err.toOpenAI()), { headers: errorHeaders(err, headers) });
}

/** Rebuilds a GatewayError from a reply carrying the service error headers; undefined when the reply is not an error. */
export function errorFromReply(headers: MsgHeaders | undefined, data: Uint8Array): GatewayError | undefined {
  const status = headers?.get(H.serviceErrorCode);
  if (!status) return undefined;
  const code = (headers?.get(H.errorCode) || 'internal_error') as ConstructorParameters<typeof GatewayError>[0];
  let message = headers?.get(H.serviceError) || 'error';
  let param: string | null = null;
  try {
    const body = JSON.parse(new TextDecoder().decode(data)) as { error?: { message?: string; param?: string | null } };
    if (body.error?.message) message = body.error.message;
    param = body.error?.param ?? null;
  } catch {
    // header-only error replies are fine
  }
  const retryAfter = headers?.get(H.retryAfterMs);
  return new GatewayError(code in codeSet ? code : 'internal_error', message, {
    status: Number(status), param, ...(retryAfter && { retryAfterMs: Number(retryAfter) }),
  });
}

const codeSet: Record<string, unknown> = ErrorCodes;
