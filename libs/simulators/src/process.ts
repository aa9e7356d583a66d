import { spawnSync } from 'node:child_process';

/*
 * A process started by a test (or by the stack runner) must not outlive what started it: a test
 * worker that dies, or a runner killed with SIGKILL, would otherwise leave nats-server, a service or
 * qbittorrent-nox running for good. On Linux, util-linux's `setpriv --pdeathsig` asks the kernel to
 * signal the child when its parent goes; elsewhere the command runs as it is.
 */

let setpriv: string | null | undefined;

/** `[command, args]` to spawn so that the process gets `signal` when its parent dies. */
export function dieWithParent(command: string, args: string[], signal: 'SIGKILL' | 'SIGTERM' = 'SIGKILL'): [string, string[]] {
  if (setpriv === undefined) {
    setpriv = process.platform === 'linux' && spawnSync('setpriv', ['--pdeathsig', 'SIGKILL', '--', 'true'], { stdio: 'ignore' }).status === 0 ? 'setpriv' : null;
  }
  return setpriv ? [setpriv, ['--pdeathsig', signal, '--', command, ...args]] : [command, args];
}
