import type { HealthChanged, HealthState, HealthTargetStatus } from '@homelab/bus';
import type { HealthConfig } from '@homelab/config';
import type { Logger } from '@homelab/logging';
import { redactText } from './redact.ts';

/*
 * Alerts on state changes, to a generic webhook (JSON) and to ntfy. One alert when a target
 * goes bad, none while it stays bad (whatever the probes say meanwhile), one recovery message
 * when it is fine again. Degraded counts as bad only with `alerts.notifyDegraded`.
 */

export type AlertLevel = 'ok' | 'degraded' | 'down';
export type AlertKind = 'alert' | 'recovery';

/** The alerting view of a state; null for `unknown` (says nothing either way). */
export function alertLevel(state: HealthState, notifyDegraded: boolean): AlertLevel | null {
  if (state === 'unknown') return null;
  if (state === 'down') return 'down';
  if (state === 'degraded') return notifyDegraded ? 'degraded' : 'ok';
  return 'ok';
}

/** Remembers what was last said per target, so nothing is repeated while a state holds. */
export class AlertPolicy {
  readonly #last = new Map<string, AlertLevel>();
  readonly #notifyDegraded: boolean;

  constructor(notifyDegraded: boolean) {
    this.#notifyDegraded = notifyDegraded;
  }

  /** After a restart: what the stored states imply was already said. */
  seed(records: readonly HealthTargetStatus[]): void {
    for (const r of records) {
      const level = alertLevel(r.state, this.#notifyDegraded);
      if (level) this.#last.set(r.key, level);
    }
  }

  decide(event: Pick<HealthChanged, 'key' | 'state'>): { kind: AlertKind; level: AlertLevel } | null {
    const level = alertLevel(event.state, this.#notifyDegraded);
    if (!level) return null;
    const last = this.#last.get(event.key) ?? 'ok';
    this.#last.set(event.key, level);
    if (level === last) return null;
    return { kind: level === 'ok' ? 'recovery' : 'alert', level };
  }
}

export interface AlertMessage {
  kind: AlertKind;
  level: AlertLevel;
  title: string;
  message: string;
}

export function formatAlert(event: HealthChanged, decision: { kind: AlertKind; level: AlertLevel }, lab: string): AlertMessage {
  const name = `${event.node}/${event.service}`;
  if (decision.kind === 'recovery') {
    const downFor = Date.parse(event.since) - Date.parse(event.previousSince);
    return {
      ...decision, title: `[${lab}] RECOVERED: ${name}`,
      message: `${name} is ${event.state} again${Number.isFinite(downFor) && downFor > 0 ? ` after ${duration(downFor)} ${event.previous}` : ''}${event.latencyMs !== null ? ` (${Math.round(event.latencyMs)} ms)` : ''}.`,
    };
  }
  return {
    ...decision, title: `[${lab}] ${decision.level.toUpperCase()}: ${name}`,
    message: `${name} is ${event.state}${event.error ? `: ${event.error}` : ''}${event.target ? ` (${event.target})` : ''}.`,
  };
}

export function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${s % 60 ? ` ${s % 60}s` : ''}`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h${m % 60 ? ` ${m % 60}m` : ''}`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

export interface NotifierOptions {
  alerts: HealthConfig['alerts'];
  lab: string;
  log: Logger;
  /** Attempts per channel (network error, 429 or 5xx are retried). */
  attempts?: number;
  retryDelayMs?: number;
}

/** Sends alerts in order, one at a time; a failing channel is logged (URL without secrets) and never stops the service. */
export class Notifier {
  readonly #o: NotifierOptions;
  readonly #policy: AlertPolicy;
  #queue: Promise<void> = Promise.resolve();

  constructor(options: NotifierOptions) {
    this.#o = options;
    this.#policy = new AlertPolicy(options.alerts.notifyDegraded);
  }

  get enabled(): boolean {
    return Boolean(this.#o.alerts.webhook || this.#o.alerts.ntfy);
  }

  seed(records: readonly HealthTargetStatus[]): void {
    this.#policy.seed(records);
  }

  /** Decides, and queues the sending; returns the queued work (tests await it). */
  notify(event: HealthChanged): Promise<void> {
    const decision = this.#policy.decide(event);
    if (!decision || !this.enabled) return this.#queue;
    const alert = formatAlert(event, decision, this.#o.lab);
    this.#queue = this.#queue.then(() => this.#send(event, alert)).catch(() => {});
    return this.#queue;
  }

  /** Resolves when everything queued was sent or given up. */
  flush(): Promise<void> {
    return this.#queue;
  }

  async #send(event: HealthChanged, alert: AlertMessage): Promise<void> {
    const { webhook, ntfy } = this.#o.alerts;
    const jobs: Promise<void>[] = [];
    if (webhook) {
      const body = JSON.stringify({
        type: `health.${alert.kind}`, lab: this.#o.lab, title: alert.title, message: alert.message, level: alert.level,
        key: event.key, node: event.node, service: event.service, kind: event.kind, state: event.state, previous: event.previous,
        since: event.since, previousSince: event.previousSince, error: event.error, latencyMs: event.latencyMs, target: event.target, eventId: event.id,
      });
      jobs.push(this.#post('webhook', webhook.url, { 'content-type': 'application/json', ...webhook.headers }, body));
    }
    if (ntfy) {
      const headers: Record<string, string> = {
        'content-type': 'text/plain; charset=utf-8',
        title: asciiHeader(alert.title),
        priority: alert.kind === 'recovery' ? 'default' : alert.level === 'down' ? 'high' : 'default',
        tags: alert.kind === 'recovery' ? 'white_check_mark' : alert.level === 'down' ? 'rotating_light' : 'warning',
      };
      if (ntfy.token) headers['authorization'] = `Bearer ${ntfy.token}`;
      jobs.push(this.#post('ntfy', `${ntfy.url}/${encodeURIComponent(ntfy.topic)}`, headers, alert.message));
    }
    await Promise.all(jobs);
  }

  async #post(channel: string, url: string, headers: Record<string, string>, body: string): Promise<void> {
    const attempts = this.#o.attempts ?? 3;
    const secrets = [this.#o.alerts.ntfy?.token ?? '', ...Object.values(this.#o.alerts.webhook?.headers ?? {})];
    let lastError = '';
    for (let attempt = 1; attempt <= attempts; attempt++) {
      try {
        const res = await fetch(url, { method: 'POST', headers, body, redirect: 'error', signal: AbortSignal.timeout(this.#o.alerts.timeoutMs) });
        await res.arrayBuffer().catch(() => undefined);
        if (res.ok) {
          this.#o.log.info({ channel, to: origin(url) }, 'alert sent');
          return;
        }
        lastError = `HTTP ${res.status}`;
        if (res.status !== 429 && res.status < 500) break;
      } catch (err) {
        const e = err as Error & { cause?: Error };
        lastError = redactText(e.cause?.message ?? e.message, secrets);
      }
      if (attempt < attempts) await new Promise((r) => setTimeout(r, (this.#o.retryDelayMs ?? 1000) * attempt));
    }
    this.#o.log.warn({ channel, to: origin(url), err: lastError }, 'alert not delivered');
  }
}

/** Where an alert went, without the path (webhook URLs often carry their secret in it). */
function origin(url: string): string {
  try { return new URL(url).origin; } catch { return '[invalid url]'; }
}

function asciiHeader(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, '?');
}
