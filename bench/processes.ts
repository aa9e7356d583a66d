// The processes of a benchmarked stack, read from /proc: CPU time, resident memory, names, the tree
// under the supervisor, and pinning to a CPU. Shared by bench/inference.ts and bench/images.ts.
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

export const TICK_US = 1e6 / 100; // USER_HZ is 100 on Linux

export function cpuUs(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) * TICK_US;
  } catch {
    return 0;
  }
}

/**
 * Voluntary context switches of every thread of a process so far: each is a thread going to sleep
 * (waiting for input), so per request they count how often the process woke up for it.
 */
export function sleeps(pid: number): number {
  let total = 0;
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const m = /voluntary_ctxt_switches:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/task/${task}/status`, 'utf8'));
      total += m ? Number(m[1]) : 0;
    }
  } catch { /* gone */ }
  return total;
}

export function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A process's name: the service folder, `nats-server`, the supervisor, or the simulator. */
export function nameOf(pid: number): string {
  let cmd: string[];
  try { cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0'); } catch { return String(pid); }
  const service = cmd.find((a) => a.includes('/services/'))?.match(/services\/([^/]+)\//)?.[1];
  if (service) return service;
  if (cmd.some((a) => a.includes('nats-server'))) return 'nats-server';
  if (cmd.some((a) => a.includes('cli/src/main.ts'))) return 'supervisor';
  if (cmd.some((a) => a.includes('shared-process.ts'))) return 'services';
  if (cmd.some((a) => a.includes('comfyui-simulator.ts'))) return 'comfyui-simulator';
  return cmd.slice(0, 2).join(' ').slice(0, 40);
}

/** The process and every descendant of it. */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const ppid = Number(readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch { /* gone */ }
  }
  const out: number[] = [];
  const walk = (pid: number): void => { out.push(pid); for (const c of children.get(pid) ?? []) walk(c); };
  walk(root);
  return out;
}

export function pin(pids: number[], cpuList: string): void {
  for (const pid of pids) spawnSync('taskset', ['-a', '-cp', cpuList, String(pid)], { stdio: 'ignore' });
}

/** SIGTERM to what is left of a process tree, then SIGKILL to what still lives after a grace. */
export async function killTree(pids: number[], graceMs = 3000): Promise<void> {
  for (const pid of pids) if (alive(pid)) { try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ } }
  const deadline = Date.now() + graceMs;
  while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  for (const pid of pids) if (alive(pid)) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
}
