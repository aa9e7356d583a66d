import { startAnthropicSimulator, startComfyUISimulator, startOllamaSimulator, startOpenAISimulator, type Simulator } from '@homelab/simulators';

/**
 * The backends of `npm run demo`, on the loopback ports config/demo.yaml names. Answers are paced
 * like a real model's tokens so streaming is visible; Ollama's larger model loads "cold".
 */
export async function startDemoSimulators(out: NodeJS.WritableStream): Promise<() => Promise<void>> {
  const pace = { tokens: 40, tokenIntervalMs: 30 };
  const started: Pick<Simulator, 'close'>[] = [];
  const start = async (what: string, port: number, make: () => Promise<Pick<Simulator, 'close'>>): Promise<void> => {
    try {
      started.push(await make());
      out.write(`demo: simulated ${what} on http://127.0.0.1:${port}\n`);
    } catch (err) {
      await Promise.allSettled(started.map((s) => s.close()));
      throw new Error(`cannot start the ${what} simulator on port ${port}: ${(err as Error).message}`);
    }
  };
  await start('vLLM', 18000, () => startOpenAISimulator({ ...pace, port: 18000, flavor: 'vllm', models: ['Qwen/Qwen2.5-7B-Instruct'] }));
  await start('Ollama', 18434, () => startOllamaSimulator({ ...pace, port: 18434, models: ['llama3.2:3b', 'qwen2.5:32b', 'nomic-embed-text'], loaded: ['llama3.2:3b'], coldLoadMs: 3000 }));
  await start('OpenAI', 18001, () => startOpenAISimulator({ ...pace, port: 18001, flavor: 'openai', models: ['gpt-5.4-mini', 'text-embedding-3-small'], apiKey: 'sk-demo-openai' }));
  // ComfyUI: a step every 100 ms, so progress and partial images are visible (docs/images.md).
  await start('ComfyUI', 18188, () => startComfyUISimulator({ port: 18188, stepIntervalMs: 100 }));
  await start('Anthropic', 18002, () => startAnthropicSimulator({ ...pace, port: 18002, models: ['claude-sonnet-5-5'], apiKey: 'sk-ant-demo' }));
  return async () => { await Promise.allSettled(started.map((s) => s.close())); };
}
