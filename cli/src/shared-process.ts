// Several services of the lab in one Node process (HOMELAB_PROCESSES=shared), for a small gateway VM:
// each service keeps its own NATS connection, identity and subjects, so nothing else changes; they
// share the process's memory (the runtime, the libraries) and its one core.
//
//   node cli/src/shared-process.ts ingress router worker-vllm …   (the stack runner starts it)
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { EXIT_CANNOT_START, cannotStartReason, shareProcess } from '@homelab/bus';
import { createLogger } from '@homelab/logging';
import { REPO_ROOT } from './home.ts';
import { REQUIRED_SERVICES, SHARED_PROCESS_NAME } from './stack.ts';

const services = process.argv.slice(2);
if (services.length === 0) {
  process.stderr.write('usage: node cli/src/shared-process.ts SERVICE…\n');
  process.exit(64);
}
const log = createLogger({ service: SHARED_PROCESS_NAME });
// Signals and faults that escape a request are the process's, logged under its name; a service that
// cannot start stops what it started and lets this loop decide, instead of ending the process.
shareProcess(SHARED_PROCESS_NAME);
// In order, each once it serves: a service's main returns when it has started (runService).
for (const name of services) {
  try {
    await import(pathToFileURL(join(REPO_ROOT, 'services', name, 'src', 'main.ts')).href);
  } catch (err) {
    // The service has said why in its own fatal line, and stopped what it had started. As with a
    // process per service: without the router or the ingress the lab cannot serve, so the process
    // ends (78: a restart cannot fix it; else 1, and the supervisor restarts it); any other runs on.
    if (REQUIRED_SERVICES.includes(name)) process.exit(cannotStartReason(err) ? EXIT_CANNOT_START : 1);
    log.warn(`${name} cannot start: the lab runs on without it (until the stack restarts)`);
  }
}
