/**
 * PURE: `floe push` progress as bytes stream: NAR bytes read so far against the total to upload,
 * the rate since the first byte and an ETA from it, as one line. The caller feeds byte counts and
 * the clock; `due` throttles the lines (a TTY redraws often, a CI log gets one every few seconds),
 * so a 4 GiB path moves on screen without printing a line per chunk.
 */
import { formatBytes, formatDuration } from '../units.js';

/** Progress counts in whole KiB under 1 MiB: a line never shows bytes. */
const KIB = { wholeKiB: true } as const;

export class PushProgress {
  /** NAR bytes read from the store and sent (before compression). */
  narBytes = 0;
  pathsDone = 0;
  private startedAt: number | undefined;
  private lastLineAt = -Infinity;

  constructor(
    public totalBytes: number,
    public totalPaths: number,
    private readonly intervalMs: number,
  ) {}

  /** More to upload: the server's answers to later missing-queries come in while uploads run. */
  more(bytes: number, paths: number): void {
    this.totalBytes += bytes;
    this.totalPaths += paths;
  }

  /** NAR bytes read; starts the clock at the first byte, so the server's "missing" answer does not lower the rate. */
  read(bytes: number, now: number): void {
    if (this.startedAt === undefined) {
      // The first line comes an interval after the first byte: a quick push needs none.
      this.startedAt = now;
      this.lastLineAt = now;
    }
    this.narBytes += bytes;
  }

  /** Whether a periodic line is due now; marks it as printed. */
  due(now: number): boolean {
    if (now - this.lastLineAt < this.intervalMs) return false;
    this.lastLineAt = now;
    return true;
  }

  elapsedSecs(now: number): number {
    return this.startedAt === undefined ? 0 : (now - this.startedAt) / 1000;
  }

  /** Bytes per second since the first byte. */
  rate(now: number): number {
    const secs = this.elapsedSecs(now);
    return secs > 0 ? this.narBytes / secs : 0;
  }

  line(now: number): string {
    const pct = this.totalBytes > 0 ? Math.min(100, Math.floor((this.narBytes / this.totalBytes) * 100)) : 100;
    const rate = this.rate(now);
    const left = Math.max(0, this.totalBytes - this.narBytes);
    const eta = rate > 0 ? `ETA ${formatDuration(left / rate)}` : 'ETA unknown';
    return `${formatBytes(this.narBytes, KIB)} of ${formatBytes(this.totalBytes, KIB)} (${pct}%), ${formatBytes(rate, KIB)}/s, ${eta}, ${this.pathsDone}/${this.totalPaths} paths`;
  }
}
