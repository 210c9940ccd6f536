/**
 * What the agent's inference worker needs to track drift — extraction, summaries, half floats —
 * without the schemas (typebox) the package index loads: `@edgefleet/shared/drift-hot-path`.
 */
export * from './extract.js';
export * from './summary.js';
export { fromHalf } from '../half-float.js';
export type { DriftBaseline, DriftExtraction, DriftSummary, TensorExtraction } from './schema.js';
