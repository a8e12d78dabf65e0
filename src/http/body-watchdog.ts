/**
 * Request bodies must keep coming while the server waits for them. `server.requestTimeout` cannot
 * say that (large NAR uploads legitimately take hours), so a client that sends its headers and a
 * few bytes and then nothing would hold its connection, and the ingestion slot behind it, forever.
 * The watchdog answers 408 and closes the connection when, while the server is waiting for body
 * bytes, none arrive for the idle time, or fewer than the minimum rate over the window.
 *
 * "Waiting" means the body is not complete and Node is reading the socket (the request's buffer is
 * below its high-water mark): an upload queued for an ingestion slot whose client filled the buffer,
 * or a client held back by backpressure, is the server's doing and never counts, nor does time
 * before the deferred `100 Continue` (the client is told not to send yet). A queued client that
 * sent a few bytes and then nothing is idle: a real one keeps sending until the buffer is full.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

export interface BodyWatchOptions {
  /** No body byte for this long while the server waits: 408. 0 = no watchdog. */
  idleMs: number;
  /** Fewer bytes per second than this, averaged over `windowMs` of waiting: 408. 0 = no rate check. */
  minBytesPerSecond: number;
  windowMs: number;
  /** How often requests are looked at. */
  tickMs: number;
}

/** One look at a request: whether the server was waiting for bytes, and how many came since the last look. */
export interface BodySample {
  waiting: boolean;
  bytes: number;
}

export type Stall = { kind: 'idle'; ms: number } | { kind: 'slow'; bytesPerSecond: number };

/**
 * PURE: whether a body stalled, from its most recent samples (oldest first, one per tick) and how
 * long the server has waited since its last byte.
 */
export function bodyStall(samples: readonly BodySample[], idleMs: number, opts: BodyWatchOptions): Stall | undefined {
  if (opts.idleMs > 0 && idleMs >= opts.idleMs) return { kind: 'idle', ms: idleMs };
  if (opts.minBytesPerSecond <= 0) return undefined;
  const windowTicks = Math.max(1, Math.round(opts.windowMs / opts.tickMs));
  if (samples.length < windowTicks) return undefined;
  const recent = samples.slice(-windowTicks);
  // Only a window spent entirely waiting for the client says anything about the client.
  if (!recent.every((s) => s.waiting)) return undefined;
  const bytesPerSecond = recent.reduce((n, s) => n + s.bytes, 0) / ((windowTicks * opts.tickMs) / 1000);
  return bytesPerSecond < opts.minBytesPerSecond ? { kind: 'slow', bytesPerSecond } : undefined;
}

export function describeStall(stall: Stall, opts: BodyWatchOptions): string {
  return stall.kind === 'idle'
    ? `request body: no byte received for ${Math.round(stall.ms / 1000)} s (FLOE_BODY_IDLE_SECONDS=${opts.idleMs / 1000}); the connection is closed, send the request again`
    : `request body: arriving at ${Math.floor(stall.bytesPerSecond)} bytes/s, under the minimum of ${opts.minBytesPerSecond} bytes/s (FLOE_BODY_MIN_RATE); the connection is closed, send the request again`;
}

interface Watch {
  res: ServerResponse;
  /** socket.bytesRead at the previous look. */
  seen: number;
  /** Time waited since the last byte. */
  idleMs: number;
  samples: BodySample[];
  /** False until the deferred 100 Continue went out. */
  armed: boolean;
}

function hasBody(req: IncomingMessage): boolean {
  if (req.headers['transfer-encoding'] !== undefined) return true;
  const len = Number(req.headers['content-length'] ?? 0);
  return Number.isFinite(len) && len > 0;
}

export class BodyWatchdog {
  private readonly watched = new Map<IncomingMessage, Watch>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly opts: BodyWatchOptions,
    private readonly onStall?: (req: IncomingMessage, stall: Stall) => void,
  ) {}

  /** Call for every request, first thing. */
  watch(req: IncomingMessage, res: ServerResponse): void {
    if ((this.opts.idleMs <= 0 && this.opts.minBytesPerSecond <= 0) || req.complete || !hasBody(req)) return;
    const expectsContinue = /100-continue/i.test(String(req.headers.expect ?? ''));
    const w: Watch = { res, seen: req.socket.bytesRead, idleMs: 0, samples: [], armed: !expectsContinue };
    if (expectsContinue) {
      // The 100 is sent by whoever authorizes the upload (see cache-handler.ts), on its own time.
      const writeContinue = res.writeContinue.bind(res);
      res.writeContinue = (cb?: () => void) => {
        w.armed = true;
        writeContinue(cb);
      };
    }
    this.watched.set(req, w);
    const forget = () => this.watched.delete(req);
    req.once('end', forget);
    res.once('close', forget);
    if (!this.timer) {
      this.timer = setInterval(() => this.tick(), this.opts.tickMs);
      this.timer.unref();
    }
  }

  private tick(): void {
    for (const [req, w] of this.watched) {
      if (req.complete || req.socket.destroyed) {
        this.watched.delete(req);
        continue;
      }
      const bytes = req.socket.bytesRead - w.seen;
      w.seen = req.socket.bytesRead;
      // Below its high-water mark the request takes bytes (Node reads the socket); at it, Node has
      // stopped reading and the client is held back by us, not idle.
      const waiting = w.armed && req.readableLength < req.readableHighWaterMark;
      if (bytes > 0) w.idleMs = 0;
      else if (waiting) w.idleMs += this.opts.tickMs;
      w.samples.push({ waiting, bytes });
      if (w.samples.length > 1000) w.samples.splice(0, w.samples.length - 1000);
      const stall = bodyStall(w.samples, w.idleMs, this.opts);
      if (stall) {
        this.watched.delete(req);
        this.answer(req, w.res, stall);
      }
    }
    if (this.watched.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private answer(req: IncomingMessage, res: ServerResponse, stall: Stall): void {
    this.onStall?.(req, stall);
    const socket = req.socket;
    // Whatever handles the request sees its body fail and finds the response already sent. The
    // request itself is destroyed too: once its response has finished, Node no longer aborts it
    // when the socket closes, and a reader waiting for its next chunk would wait forever.
    const close = (): void => {
      req.destroy();
      socket.destroy();
    };
    if (res.headersSent) {
      close();
      return;
    }
    const body = `${describeStall(stall, this.opts)}\n`;
    res.writeHead(408, {
      'Content-Type': 'text/plain; charset=UTF-8',
      'Content-Length': String(Buffer.byteLength(body)),
      'Cache-Control': 'no-store',
      Connection: 'close',
    });
    res.end(body, close);
    setTimeout(close, 5000).unref(); // a client that does not read its answer either
  }
}
