/** The parts of an Ajv error the message needs. */
export interface ValidationIssue {
  keyword: string;
  instancePath: string;
  message?: string;
  params?: Record<string, unknown>;
}

/**
 * One line naming what is wrong. A union of literals (profile names, states) fails as one "must be
 * equal to constant" per literal plus an "anyOf"; those collapse into "must be one of a, b, c". An
 * unknown property fails as "schema is false" at its path plus "additionalProperties" at its parent;
 * those become "<parent> has an unknown property <name>".
 */
export function validationMessage(context: string, issues: readonly ValidationIssue[]): string {
  const allowed = new Map<string, unknown[]>();
  for (const i of issues) {
    if (i.keyword === 'const') allowed.set(i.instancePath, [...(allowed.get(i.instancePath) ?? []), i.params?.allowedValue]);
  }
  const parts: string[] = [];
  for (const [path, values] of allowed) parts.push(`${context}${path} must be one of ${values.map(String).join(', ')}`);
  const unknown = issues.filter((i) => i.message === 'schema is false');
  for (const i of unknown) {
    const cut = i.instancePath.lastIndexOf('/');
    parts.push(`${context}${i.instancePath.slice(0, cut)} has an unknown property ${i.instancePath.slice(cut + 1)}`);
  }
  for (const i of issues) {
    if (i.keyword === 'const' || (i.keyword === 'anyOf' && allowed.has(i.instancePath))) continue;
    if (unknown.includes(i) || (i.keyword === 'additionalProperties' && unknown.length > 0)) continue;
    parts.push(`${context}${i.instancePath} ${i.message ?? 'is invalid'}`);
  }
  return parts.join(', ');
}
