// A vLLM simulator in a process of its own, so the benchmark can measure its CPU apart from the
// gateway's. Prints `{"port": N}` once listening; runs until killed.
//
//   node bench/simulator.ts [--tokens 16] [--port 0]
import { parseArgs } from 'node:util';
import { startOpenAISimulator } from '@homelab/simulators';

const { values } = parseArgs({ options: { tokens: { type: 'string', default: '16' }, port: { type: 'string', default: '0' } } });
const sim = await startOpenAISimulator({ flavor: 'vllm', models: ['Qwen/Qwen2.5-7B-Instruct'], tokens: Number(values.tokens), port: Number(values.port) });
// The benchmark sends hundreds of thousands of requests: the simulator must not keep a record of each.
setInterval(() => { sim.requests.length = 0; }, 1000).unref();
process.stdout.write(`${JSON.stringify({ port: sim.port })}\n`);
process.on('SIGTERM', () => void sim.close().then(() => process.exit(0)));
