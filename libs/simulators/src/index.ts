export * from './sim.ts';
export * from './openai.ts';
export * from './ollama.ts';
export * from './anthropic.ts';
export * from './media.ts';
export * from './comfyui.ts';
export * from './png.ts';
export * from './process.ts';
