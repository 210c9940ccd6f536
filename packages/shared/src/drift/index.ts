export * from './schema.js';
export * from './summary.js';
export * from './baseline.js';
export * from './extract.js';
