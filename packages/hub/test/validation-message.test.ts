import { describe, expect, it } from 'vitest';
import { validationMessage } from '../src/http/validation-message.js';

describe('validation messages', () => {
  it('collapses a failed union of literals into the allowed values', () => {
    const issues = [
      { keyword: 'const', instancePath: '/profile', message: 'must be equal to constant', params: { allowedValue: 'fp16' } },
      { keyword: 'const', instancePath: '/profile', message: 'must be equal to constant', params: { allowedValue: 'pruned' } },
      { keyword: 'anyOf', instancePath: '/profile', message: 'must match a schema in anyOf' },
    ];
    expect(validationMessage('body', issues)).toBe('body/profile must be one of fp16, pruned');
  });

  it('names an unknown property instead of a false schema', () => {
    const issues = [
      { keyword: 'boolean', instancePath: '/x', message: 'schema is false' },
      { keyword: 'additionalProperties', instancePath: '', message: 'must not have additional properties' },
    ];
    expect(validationMessage('body', issues)).toBe('body has an unknown property x');
  });

  it('keeps other messages as they are', () => {
    expect(validationMessage('querystring', [{ keyword: 'type', instancePath: '/minAgreement', message: 'must be number' }])).toBe('querystring/minAgreement must be number');
  });
});
