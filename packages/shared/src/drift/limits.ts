/**
 * Bounds of drift baselines and summaries, as plain numbers: the inference worker's hot path
 * (extract.ts, summary.ts) needs them without loading the schemas (typebox costs each worker
 * ~18 MB of heap).
 */

/** Most input features tracked per model (image-style inputs use summary features instead). */
export const MAX_DRIFT_FEATURES = 256;
/** Most output summaries per model (a classifier has one: the class; regressors one per value). */
export const MAX_DRIFT_OUTPUTS = 64;
/** Most bin edges of a numeric feature; bins = edges + 1 (one open bin below, one above). */
export const MAX_DRIFT_EDGES = 64;
/** Most known categories of a categorical feature (1000 ImageNet classes fit); plus one "other". */
export const MAX_DRIFT_CATEGORIES = 1024;
/**
 * Most samples one summary may hold (per feature: Σ counts + missing). A busy device answering
 * ~2,800 samples a second fills a one-hour window with this many; the agent's window also closes at
 * 10,000,000 requests. The bound stops one device from swamping a fleet window with inflated counts
 * (merging is plain addition, so a summary's weight is its sample count).
 */
export const MAX_SUMMARY_SAMPLES = 10_000_000;

/** Most per-sample values of one tensor tracked one by one (`elements`); larger tensors get summary features. */
export const MAX_ELEMENT_FEATURES = 64;
