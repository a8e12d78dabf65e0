import { describe, expect, it } from 'vitest';
import { closestName, editDistance } from './names.js';

describe('closestName', () => {
  it('suggests names within two edits, nothing further', () => {
    expect(editDistance('acme', 'acne')).toBe(1);
    expect(closestName('acm', ['globex', 'acme'])).toBe('acme');
    expect(closestName('Acme', ['acme'])).toBe('acme');
    expect(closestName('zzzz', ['acme'])).toBeUndefined();
    expect(closestName('acme', ['acme'])).toBeUndefined();
  });
});
