import { Compile } from 'typebox/compile';
import { DriftSummary } from './schema.js';

// Apart from summary.ts so that the inference worker, which builds summaries, never loads the
// schema compiler; the hub checks what it receives.
const summaryValidator = Compile(DriftSummary);

/**
 * Why `value` is not a valid drift summary, or null when it is: the schema (bounds, integer
 * non-negative counts and sums, closed objects) and the window order. Lengths need the baseline:
 * `summaryMismatch`. Never throws.
 */
export function summaryInvalidity(value: unknown): string | null {
  try {
    if (!summaryValidator.Check(value)) {
      const first = summaryValidator.Errors(value)[0];
      return `drift summary does not match its schema at "${first?.instancePath ?? ''}": ${first?.message ?? 'invalid'}`;
    }
    const summary = value as DriftSummary;
    if (summary.window.start > summary.window.end) return `drift summary window starts (${summary.window.start}) after it ends (${summary.window.end})`;
    return null;
  } catch (err) {
    return `drift summary could not be checked: ${(err as Error).message}`;
  }
}
