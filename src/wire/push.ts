/**
 * PURE: the JSON `floe push` and the server exchange on the batch cache API, as zod schemas with
 * the inferred types, imported by both sides (http/routes/api.ts parses with them, cli/push.ts
 * writes and reads them), so the format is written once. Imports nothing but zod.
 */
import { z } from 'zod';

/** `POST /api/v1/cache[/<org>/<slice>]/missing`: store paths, `/nix/store/<base>` or `<base>`. */
export const missingRequest = z.object({ paths: z.array(z.string()) });
export type MissingRequest = z.infer<typeof missingRequest>;

/** Its answer: what to upload, what the server fetched from upstreams, which upstream copies it refused. */
export const missingResponse = z.object({
  missing: z.array(z.string()),
  mirrored: z.array(z.string()).optional(),
  refused: z.array(z.object({ path: z.string(), reason: z.string() })).optional(),
});
export type MissingResponse = z.infer<typeof missingResponse>;

/** The first line of `PUT /api/v1/cache[/<org>/<slice>]/paths`; the NAR follows the newline. */
export const pushedPath = z.object({
  storePath: z.string(),
  narHash: z.string(),
  narSize: z.number().int().positive(),
  references: z.array(z.string()).max(50_000),
  deriver: z.string().nullable().optional(),
  ca: z.string().nullable().optional(),
  sigs: z.array(z.string()).max(100).optional(),
  /** Narinfo fields the server keeps without interpreting them (e.g. `Provenance`), in order; unsigned. */
  fields: z
    .array(z.object({ name: z.string().max(64), value: z.string().max(64 * 1024) }))
    .max(32)
    .optional(),
});
export type PushedPath = z.infer<typeof pushedPath>;

/** The answer to one pushed path (201 created, 200 already there). */
export interface PushedPathResult {
  storePath: string;
  status: 'created' | 'exists';
  narHash: string;
  narSize: number;
  receivedBytes: number;
}

/**
 * `POST /api/v1/cache[/<org>/<slice>]/paths/batch`: entries back to back, each a `pushedPath` JSON
 * line, a newline, then exactly narSize bytes of uncompressed NAR; at most this many entries, each
 * NAR at most this many bytes (the server verifies such NARs in its event loop thread).
 */
export const BATCH_MAX_ENTRIES = 64;
export const BATCH_MAX_NAR_BYTES = 64 << 10;
/**
 * A batch body at most: every entry's NAR at its largest, and 1 MiB for the path info lines. The
 * server holds a body whole while it verifies and commits it, so this (times the batch slots, see
 * `Uploads.inBatchSlot`) bounds what batches hold in memory; a path with a longer line goes alone.
 */
export const BATCH_MAX_BODY_BYTES = BATCH_MAX_ENTRIES * BATCH_MAX_NAR_BYTES + (1 << 20);

/** One entry's answer: `refused` carries the status and message a single upload would have had. */
export type PushedBatchEntry =
  | PushedPathResult
  | { storePath: string; status: 'refused'; httpStatus: number; code: string; message: string };

/** The answer to a batch (200 once the body was well formed), in the order of the entries. */
export interface PushedBatchResult {
  results: PushedBatchEntry[];
}
