export * from './model-io.js';
export * from './builder.js';
export * from './graph.js';
