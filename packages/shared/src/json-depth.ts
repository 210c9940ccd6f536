/**
 * True when a parsed JSON value nests deeper than `max` arrays/objects. Iterative on purpose: the
 * values it guards against (200,000 nested arrays) are exactly the ones that overflow the stack of
 * a recursive walk, and of `JSON.stringify` later.
 */
export function jsonDepthExceeds(value: unknown, max: number): boolean {
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth + 1 > max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
    }
  }
  return false;
}
