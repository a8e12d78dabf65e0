import { describe, expect, it } from 'vitest';
import { MAX_EXPANSION_RATIO, UNDECLARED_NAR_FLOOR_BYTES, narSizeProblem } from './ingest.js';

describe('narSizeProblem', () => {
  const limit = 1 << 30;
  it("the server's limit bounds every upload", () => {
    expect(narSizeProblem(limit + 1, limit, limit, undefined)?.message).toBe(
      `NAR is larger than the limit of ${limit} bytes`,
    );
    expect(narSizeProblem(limit + 1, 10, limit, limit * 2)?.code).toBe('too_large');
  });
  it('a declared narSize stops decoding the moment the NAR passes it, whatever the ratio', () => {
    expect(narSizeProblem(5000, 10, limit, 5000)).toBeUndefined();
    expect(narSizeProblem(5001, 10, limit, 5000)?.message).toBe(
      'narSize: mismatch: the NAR is larger than the declared 5000 bytes',
    );
    expect(narSizeProblem(500 << 20, 100, limit, 600 << 20)).toBeUndefined();
  });
  it('without a declared size, a NAR may expand to the floor, then to the ratio times what was received', () => {
    expect(narSizeProblem(UNDECLARED_NAR_FLOOR_BYTES, 1, limit, undefined)).toBeUndefined();
    expect(narSizeProblem(UNDECLARED_NAR_FLOOR_BYTES + 1, 289, limit, undefined)?.message).toMatch(
      /more than 1000 times the 289 compressed bytes received .*decompression bomb/,
    );
    const received = 200_000;
    expect(narSizeProblem(MAX_EXPANSION_RATIO * received, received, limit, undefined)).toBeUndefined();
    expect(narSizeProblem(MAX_EXPANSION_RATIO * received + 1, received, limit, undefined)?.code).toBe('too_large');
  });
});
