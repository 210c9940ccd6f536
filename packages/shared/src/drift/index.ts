export * from './schema.js';
export * from './summary.js';
export * from './summary-check.js';
export * from './baseline.js';
export * from './extract.js';
export * from './summary-histograms.js';
