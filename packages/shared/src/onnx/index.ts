export * from './model-io.js';
export * from './builder.js';
