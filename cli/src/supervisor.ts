import { spawn, type ChildProcess } from 'node:child_process';
import { dieWithParent } from '@homelab/simulators/process';

export interface ProcessSpec {
  name: string;
  command: string;
  args: string[];
  env: Record<string, string | undefined>;
  /** Lines this process prints are JSON (pino); others are printed as they are. */
  jsonLogs: boolean;
  /** The lab cannot run without it: when it cannot start, the supervisor's `onCannotStart` says so. */
  required?: boolean;
  /**
   * In a process group of its own, so a Ctrl-C in the terminal (SIGINT to the whole foreground
   * group) does not reach it: NATS must outlive the services' drain, and the supervisor stops it last.
   */
  detached?: boolean;
}

/** The exit code of a service that cannot start for a reason a restart cannot fix (libs/bus startup.ts). */
export const EXIT_CANNOT_START = 78;

export interface SupervisorOptions {
  out: NodeJS.WritableStream;
  /** Print pino lines as they are instead of the readable form. */
  rawJson?: boolean;
  /** Restart backoff: first delay and ceiling, in ms. */
  backoffMs?: { first: number; max: number };
  /** A process exited with EXIT_CANNOT_START: it is not restarted; `reason` is its last fatal line. */
  onCannotStart?: (name: string, reason: string, required: boolean) => void;
}

const LEVELS: Record<string, string> = { trace: 'TRACE', debug: 'DEBUG', info: 'INFO ', warn: 'WARN ', error: 'ERROR', fatal: 'FATAL' };
const NATS_LEVELS: Record<string, string> = { INF: 'INFO', WRN: 'WARN', ERR: 'ERROR', FTL: 'FATAL', DBG: 'DEBUG', TRC: 'TRACE' };
const OMIT = new Set(['level', 'time', 'service', 'msg', 'pid', 'hostname']);

/** One pino JSON line as `12:00:01.123 router    INFO  started key=value`, for people reading a terminal. */
export function formatLogLine(name: string, line: string, width: number): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(line) as Record<string, unknown>;
  } catch {
    // nats-server's own format: `[pid] 2026/11/27 16:42:42.015059 [INF] message`
    const nats = /^\[\d+\] \S+ (\d\d:\d\d:\d\d\.\d{3})\d* \[(\w+)\] (.*)$/.exec(line);
    if (nats) return `${nats[1]} ${name.padEnd(width)} ${(NATS_LEVELS[nats[2]!] ?? nats[2]!).padEnd(5)} ${nats[3]}`;
    return `${timestamp()} ${name.padEnd(width)} ${line}`;
  }
  const time = typeof record['time'] === 'string' ? record['time'].slice(11, 23) : timestamp();
  const level = LEVELS[String(record['level'])] ?? String(record['level'] ?? '').toUpperCase();
  const extras = Object.entries(record).filter(([k]) => !OMIT.has(k)).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
  // Services that share a process (HOMELAB_PROCESSES=shared) each name themselves in their lines.
  const who = typeof record['service'] === 'string' ? record['service'] : name;
  return `${time} ${who.padEnd(width)} ${level} ${String(record['msg'] ?? '')}${extras.length ? ' ' + extras.join(' ') : ''}`;
}

function timestamp(): string {
  return new Date().toISOString().slice(11, 23);
}

interface Supervised { spec: ProcessSpec; child?: ChildProcess; restarts: number; startedAt: number; timer?: NodeJS.Timeout; lastFatal?: string }

/** The `msg` of a pino line at level fatal, else undefined. */
function fatalMessage(line: string): string | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const record = JSON.parse(line) as { level?: unknown; msg?: unknown };
    return record.level === 'fatal' && typeof record.msg === 'string' ? record.msg : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Runs each service as its own process: one combined log with the name on each line, restart
 * with exponential backoff when one crashes, and a clean stop of all of them on shutdown.
 */
export class Supervisor {
  readonly #options: SupervisorOptions;
  readonly #procs = new Map<string, Supervised>();
  #stopping = false;
  #width = 13;

  constructor(options: SupervisorOptions) {
    this.#options = options;
    // Whatever way this process ends, nothing it started stays behind (a detached NATS above all).
    process.once('exit', () => {
      for (const e of this.#procs.values()) if (e.child && e.child.exitCode === null && e.child.signalCode === null) e.child.kill('SIGKILL');
    });
  }

  add(spec: ProcessSpec): void {
    this.#width = Math.max(this.#width, spec.name.length);
    const entry: Supervised = { spec, restarts: 0, startedAt: 0 };
    this.#procs.set(spec.name, entry);
    this.#launch(entry);
  }

  print(name: string, line: string): void {
    this.#options.out.write(`${this.#options.rawJson ? line : formatLogLine(name, line, this.#width)}\n`);
  }

  #launch(entry: Supervised): void {
    const { spec } = entry;
    entry.startedAt = Date.now();
    // SIGTERM when the supervisor itself dies (even by SIGKILL): each service drains, nothing stays behind.
    const child = spawn(...dieWithParent(spec.command, spec.args, 'SIGTERM'), { env: spec.env as NodeJS.ProcessEnv, stdio: ['ignore', 'pipe', 'pipe'], detached: spec.detached ?? false });
    entry.child = child;
    const pipe = (stream: NodeJS.ReadableStream): void => {
      let rest = '';
      stream.on('data', (b: Buffer) => {
        rest += b.toString();
        let nl: number;
        while ((nl = rest.indexOf('\n')) >= 0) {
          const line = rest.slice(0, nl);
          rest = rest.slice(nl + 1);
          if (!line.trim()) continue;
          entry.lastFatal = fatalMessage(line) ?? entry.lastFatal;
          this.print(spec.name, line);
        }
      });
    };
    pipe(child.stdout!);
    pipe(child.stderr!);
    child.on('error', (err) => this.print('stack', `${spec.name}: cannot start: ${err.message}`));
    // 'close', not 'exit': the process's last lines (its fatal reason) have been read by then.
    child.on('close', (code, signal) => {
      entry.child = undefined;
      if (this.#stopping) return;
      if (code === EXIT_CANNOT_START) {
        // A port in use, an invalid config, a missing permission: restarting would fail the same way.
        const reason = entry.lastFatal ?? 'it cannot start (see above)';
        this.print('stack', `${spec.name} cannot start and will not be restarted: ${reason}`);
        this.#options.onCannotStart?.(spec.name, reason, spec.required ?? false);
        return;
      }
      // A process that ran a minute is healthy again: start counting restarts from zero.
      if (Date.now() - entry.startedAt > 60_000) entry.restarts = 0;
      const { first, max } = this.#options.backoffMs ?? { first: 1000, max: 30_000 };
      const delay = Math.min(max, first * 2 ** entry.restarts);
      entry.restarts++;
      this.print('stack', `${spec.name} exited (${signal ?? `code ${code}`}); restarting in ${delay} ms`);
      entry.timer = setTimeout(() => this.#launch(entry), delay);
    });
  }

  /** SIGTERM to every process (they drain), SIGKILL after the grace period. */
  async stop(graceMs = 15_000, last?: string): Promise<void> {
    this.#stopping = true;
    const waitFor = (entries: Supervised[]): Promise<unknown> => Promise.all(entries.map((e) => {
      clearTimeout(e.timer);
      const child = e.child;
      if (!child || child.exitCode !== null) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const kill = setTimeout(() => child.kill('SIGKILL'), graceMs);
        child.once('exit', () => { clearTimeout(kill); resolve(); });
        child.kill('SIGTERM');
      });
    }));
    const all = [...this.#procs.values()];
    // Services first, then what they depend on (NATS), so they can drain cleanly.
    await waitFor(all.filter((e) => e.spec.name !== last));
    await waitFor(all.filter((e) => e.spec.name === last));
  }
}
