// The ComfyUI simulator in a process of its own, so bench/images.ts can measure its CPU apart from the
// gateway's. Prints `{"port": N}` once listening; runs until killed.
//
//   node bench/comfyui-simulator.ts [--step-ms 0] [--node-ms 0] [--previews] [--port 0]
import { parseArgs } from 'node:util';
import { startComfyUISimulator } from '@homelab/simulators';

const { values } = parseArgs({
  options: {
    'step-ms': { type: 'string', default: '0' },
    'node-ms': { type: 'string', default: '0' },
    previews: { type: 'boolean', default: false },
    port: { type: 'string', default: '0' },
  },
});
const sim = await startComfyUISimulator({
  port: Number(values.port), stepIntervalMs: Number(values['step-ms']), nodeIntervalMs: Number(values['node-ms']), previews: values.previews,
});
// The benchmark runs thousands of prompts: the simulator keeps a record of each (and looks prompts up in
// that list), so the finished ones are dropped, as are the request lines.
setInterval(() => {
  const live = sim.prompts.filter((p) => p.status === 'pending' || p.status === 'running');
  sim.prompts.splice(0, sim.prompts.length, ...live);
  sim.requests.length = 0;
}, 1000).unref();
process.stdout.write(`${JSON.stringify({ port: sim.port })}\n`);
process.on('SIGTERM', () => void sim.close().then(() => process.exit(0)));
