/** The answer of `POST /api/v1/gc` (cache/gc.ts makes it, `floe gc` prints it). */
export interface GcReport {
  dryRun: boolean;
  graceSeconds: number;
  durationMs: number;
  roots: number;
  paths: { total: number; kept: number; collected: number; logicalBytes: number };
  nars: { collected: number; storedBytes: number };
  orphanBlobs: { collected: number; bytes: number };
  expired: { narUploads: number; releaseUploads: number; pins: number };
  /** Up to 100 collected paths, as `<org>/<slice> <store path>`. */
  sample: string[];
}
