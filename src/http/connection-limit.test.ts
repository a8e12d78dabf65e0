import { describe, expect, it } from 'vitest';
import { ConnectionCounter } from './connection-limit.js';

describe('ConnectionCounter', () => {
  it('refuses the connection over the cap per address, and counts addresses apart', () => {
    const c = new ConnectionCounter(2);
    expect(c.tryOpen('10.0.0.1')).toBe(true);
    expect(c.tryOpen('10.0.0.1')).toBe(true);
    expect(c.tryOpen('10.0.0.1')).toBe(false);
    expect(c.count('10.0.0.1')).toBe(2);
    expect(c.tryOpen('10.0.0.2')).toBe(true);
    c.close('10.0.0.1');
    expect(c.tryOpen('10.0.0.1')).toBe(true);
    c.close('10.0.0.2');
    expect(c.count('10.0.0.2')).toBe(0);
  });
});
