export * from './sim.ts';
