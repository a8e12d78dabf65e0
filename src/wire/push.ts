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
