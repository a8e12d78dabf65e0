/** FLOE_S3_READ_DEPTH: ranged GETs in flight per NAR download streamed from S3. */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';

const load = (env: Record<string, string>) => loadConfig({ dataDir: '/tmp/floe-config-test' }, env);

describe('FLOE_S3_READ_DEPTH', () => {
  it("is the store's default when unset, and takes 1 to 32", () => {
    expect(load({ FLOE_S3_BUCKET: 'b' }).s3!.readDepth).toBeUndefined();
    expect(load({ FLOE_S3_BUCKET: 'b', FLOE_S3_READ_DEPTH: '1' }).s3!.readDepth).toBe(1);
    expect(load({ FLOE_S3_BUCKET: 'b', FLOE_S3_READ_DEPTH: '32' }).s3!.readDepth).toBe(32);
  });

  it('refuses anything else, naming the setting', () => {
    for (const bad of ['0', '33', '2.5', 'many']) {
      expect(() => load({ FLOE_S3_BUCKET: 'b', FLOE_S3_READ_DEPTH: bad })).toThrow(/FLOE_S3_READ_DEPTH.*1 .*32/);
    }
  });

  it('needs a bucket like every other S3 setting', () => {
    expect(() => load({ FLOE_S3_READ_DEPTH: '4' })).toThrow(
      /FLOE_S3_BUCKET: must be set when FLOE_S3_READ_DEPTH is set/,
    );
  });
});
