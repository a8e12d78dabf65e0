/** Helpers for fault tests: steady background load, polling, and a batch upload that reports its status. */
import { connect, type Socket } from 'node:net';
import type { TestServer } from './server.js';
import { basicAuth } from './server.js';
import { type FakePath, fakePath } from './paths.js';

/** The process is still running (not exited, not killed by a signal). */
export function alive(server: TestServer): boolean {
  return server.process.exitCode === null && server.process.signalCode === null;
}

export async function until(cond: () => Promise<boolean> | boolean, ms: number, stepMs = 100): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      if (await cond()) return true;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/** `PUT /api/v1/cache/paths`: one path info line and the NAR. */
export async function batchUpload(
  server: { url: string },
  token: string,
  p: FakePath,
): Promise<{ status: number; text: string }> {
  const meta = { storePath: `/nix/store/${p.base}`, narHash: p.narHash, narSize: p.narSize, references: [] };
  const res = await fetch(`${server.url}/api/v1/cache/paths`, {
    method: 'PUT',
    headers: { Authorization: `Bearer ${token}` },
    body: new Uint8Array(Buffer.concat([Buffer.from(JSON.stringify(meta) + '\n'), p.nar])),
  });
  return { status: res.status, text: await res.text() };
}

/**
 * Reads and uploads against every server, one request at a time per server, until stopped.
 * Collects every status it gets (0 = no HTTP answer at all: refused or reset).
 */
export class LoadLoop {
  readonly statuses: number[] = [];
  private running = false;
  private loops: Promise<void>[] = [];

  constructor(
    private readonly servers: TestServer[],
    private readonly writeToken: string,
    private readonly readToken: string,
    private readonly stored: FakePath,
  ) {}

  start(): void {
    this.running = true;
    this.loops = this.servers.map(async (server, i) => {
      let n = 0;
      while (this.running) {
        n++;
        try {
          if (n % 3 === 0) {
            this.statuses.push((await batchUpload(server, this.writeToken, fakePath(`load-${i}-${n}`))).status);
          } else {
            const res = await fetch(`${server.url}/cache/${this.stored.hashPart}.narinfo`, {
              headers: { Authorization: basicAuth(this.readToken) },
              signal: AbortSignal.timeout(15_000),
            });
            await res.arrayBuffer();
            this.statuses.push(res.status);
          }
        } catch {
          this.statuses.push(0);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    });
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }
}

/** How often each status occurs, for failure messages. */
export function counts(statuses: number[]): Record<number, number> {
  const out: Record<number, number> = {};
  for (const s of statuses) out[s] = (out[s] ?? 0) + 1;
  return out;
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/**
 * One HTTP/1.1 connection on a raw socket, for what fetch hides: several requests on one
 * connection, the server closing it, and reading a response slowly (`throttleMs` after each chunk).
 * Responses must carry Content-Length (Floe's do).
 */
export class RawConnection {
  private buf = Buffer.alloc(0);
  private ended = false;
  private wake: (() => void) | undefined;
  readonly socket: Socket;
  received = 0;

  constructor(port: number, opts: { throttleMs?: number } = {}) {
    this.socket = connect(port, '127.0.0.1');
    this.socket.on('data', (chunk: Buffer) => {
      this.buf = Buffer.concat([this.buf, chunk]);
      this.received += chunk.length;
      if (opts.throttleMs) {
        this.socket.pause();
        setTimeout(() => this.socket.resume(), opts.throttleMs);
      }
      this.notify();
    });
    this.socket.on('error', () => undefined);
    this.socket.on('close', () => {
      this.ended = true;
      this.notify();
    });
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private async waitForData(deadline: number): Promise<void> {
    if (this.ended) throw new Error('connection closed');
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise<void>((resolve) => {
      this.wake = resolve;
      setTimeout(resolve, 100);
    });
  }

  write(text: string | Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(text, (err) => (err ? reject(err) : resolve())));
  }

  /** The next complete response on the connection. */
  async response(timeoutMs = 10_000): Promise<RawResponse> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const headEnd = this.buf.indexOf('\r\n\r\n');
      if (headEnd >= 0) {
        const lines = this.buf.subarray(0, headEnd).toString('latin1').split('\r\n');
        const status = Number(lines[0]!.split(' ')[1]);
        const headers: Record<string, string> = {};
        for (const line of lines.slice(1)) {
          const colon = line.indexOf(':');
          headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
        }
        const length = Number(headers['content-length'] ?? 0);
        if (this.buf.length >= headEnd + 4 + length) {
          const body = this.buf.subarray(headEnd + 4, headEnd + 4 + length);
          this.buf = this.buf.subarray(headEnd + 4 + length);
          return { status, headers, body: Buffer.from(body) };
        }
      }
      await this.waitForData(deadline);
    }
  }

  /** Whether the server closed the connection within `ms`. */
  async closedWithin(ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!this.ended && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return this.ended;
  }

  get isClosed(): boolean {
    return this.ended;
  }

  close(): void {
    this.socket.destroy();
  }
}
