/**
 * Open Inference Protocol JSON tensor `data`, shared by the agent's local API and the hub's
 * calibration upload. Pure; each caller words its own errors (their codes and wording differ).
 */

/**
 * Flattens nested `data` arrays (row-major), as the protocol allows either form, at most as deep as
 * the shape has dimensions; undefined when the data is nested deeper than that. Iterative:
 * `flat(Infinity)` recurses, and data nested 10,000 deep overflowed the stack.
 */
export function flattenTensorData(shape: readonly number[], data: readonly unknown[]): unknown[] | undefined {
  if (!data.some(Array.isArray)) return data as unknown[];
  const maxDepth = Math.max(1, shape.length);
  const out: unknown[] = [];
  const stack: Array<{ items: readonly unknown[]; next: number }> = [{ items: data, next: 0 }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (top.next === top.items.length) {
      stack.pop();
      continue;
    }
    const item = top.items[top.next++];
    if (!Array.isArray(item)) out.push(item);
    else if (stack.length < maxDepth) stack.push({ items: item, next: 0 });
    else return undefined;
  }
  return out;
}

/** The values each integer datatype holds; 64-bit ones only as far as a JSON number stays exact. */
export const INTEGER_RANGES = {
  INT8: [-128, 127],
  UINT8: [0, 255],
  INT16: [-32768, 32767],
  UINT16: [0, 65535],
  INT32: [-2147483648, 2147483647],
  UINT32: [0, 4294967295],
  INT64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  UINT64: [0, Number.MAX_SAFE_INTEGER],
} as const satisfies Record<string, readonly [number, number]>;
