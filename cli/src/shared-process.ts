// Several services of the lab in one Node process (HOMELAB_PROCESSES=shared), for a small gateway VM:
// each service keeps its own NATS connection, identity and subjects, so nothing else changes; they
// share the process's memory (the runtime, the libraries) and its one core.
//
//   node cli/src/shared-process.ts ingress router worker-vllm …   (the stack runner starts it)
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO_ROOT } from './home.ts';

const services = process.argv.slice(2);
if (services.length === 0) {
  process.stderr.write('usage: node cli/src/shared-process.ts SERVICE…\n');
  process.exit(64);
}
// In order, each once it serves: a service's main returns when it has started (runService).
for (const name of services) await import(pathToFileURL(join(REPO_ROOT, 'services', name, 'src', 'main.ts')).href);
