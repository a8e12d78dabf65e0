/** Watching a real server stay responsive while an attack runs (bounds, not benchmarks). */
import { readFileSync } from 'node:fs';
import { expect } from 'vitest';

/** Polls `<url>/healthz` while `attack` runs; returns the slowest answer in ms. */
export async function slowestHealthzDuring(
  url: string,
  attack: () => Promise<unknown>,
  timeoutMs = 30_000,
): Promise<number> {
  let done = false;
  let slowest = 0;
  const poll = (async () => {
    while (!done) {
      const started = performance.now();
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(timeoutMs) });
      expect(res.status).toBe(200);
      slowest = Math.max(slowest, performance.now() - started);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  try {
    await attack();
  } finally {
    done = true;
    await poll;
  }
  return slowest;
}

/** A process's resident memory in bytes (Linux). */
export function rssBytesOf(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
}
