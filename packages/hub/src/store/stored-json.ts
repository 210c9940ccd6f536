import type { Static, TSchema } from 'typebox';
import { Compile } from 'typebox/compile';

export type StoredJson<T> = { value: T } | { error: string };

/**
 * A reader for one kind of stored JSON text. Stored state is not trusted (rows from before a bound
 * existed, hand-edited databases), so the problem is named (`is not JSON …`, `does not match its
 * schema at …`) for the caller to prefix with what was read, instead of an exception.
 */
export function storedJsonReader<S extends TSchema>(schema: S): (text: string) => StoredJson<Static<S>> {
  const validator = Compile(schema);
  return (text) => {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      return { error: `is not JSON (${(err as Error).message})` };
    }
    if (validator.Check(value)) return { value: value as Static<S> };
    const first = validator.Errors(value)[0];
    return { error: `does not match its schema at "${first?.instancePath ?? ''}": ${first?.message ?? 'invalid'}` };
  };
}
