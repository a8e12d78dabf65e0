/**
 * Graceful shutdown of the HTTP server: stop accepting connections, close the idle ones, let every
 * request in flight finish (uploads arriving, downloads leaving), close each connection as its last
 * request is done, and cut whatever is left when the grace period is over.
 *
 * Node's own `server.close()` is not used for this: it also closes every connection whose response
 * has *ended*, even when the end of that response is still waiting in Node's buffer for a slow
 * client, which truncates downloads. Here a connection counts as idle only once its responses have
 * closed (handed to the OS, or aborted).
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { Server as NetServer, type Socket } from 'node:net';
import type { Logger } from '../log.js';

export class ConnectionDrain {
  /** Every open connection and how many of its requests are unanswered. */
  private readonly inFlight = new Map<Socket, number>();
  private draining = false;

  constructor(private readonly server: Server) {
    server.on('connection', (socket: Socket) => {
      this.inFlight.set(socket, 0);
      socket.once('close', () => this.inFlight.delete(socket));
    });
  }

  get isDraining(): boolean {
    return this.draining;
  }

  /** Call first thing for every request. */
  track(req: IncomingMessage, res: ServerResponse): void {
    const socket = req.socket;
    this.inFlight.set(socket, (this.inFlight.get(socket) ?? 0) + 1);
    // Tells the client not to send another request on this connection.
    if (this.draining) res.setHeader('Connection', 'close');
    res.once('close', () => {
      const left = (this.inFlight.get(socket) ?? 1) - 1;
      if (!this.inFlight.has(socket)) return;
      this.inFlight.set(socket, left);
      if (left === 0 && this.draining) socket.destroySoon();
    });
  }

  /** Resolves once every connection is closed: by its client, after its last request, or at the deadline. */
  drain(graceMs: number, log: Logger): Promise<void> {
    this.draining = true;
    return new Promise((resolve) => {
      const deadline = setTimeout(() => {
        log.warn(
          { graceSeconds: graceMs / 1000, connections: this.inFlight.size },
          'shutdown grace period over: closing the connections still open',
        );
        for (const socket of this.inFlight.keys()) socket.destroy();
      }, graceMs);
      // Stops listening; the callback runs when the last connection has closed.
      NetServer.prototype.close.call(this.server, () => {
        clearTimeout(deadline);
        resolve();
      });
      for (const [socket, n] of this.inFlight) if (n === 0) socket.destroySoon();
      if (this.inFlight.size > 0)
        log.info(
          { connections: this.inFlight.size, busy: [...this.inFlight.values()].filter((n) => n > 0).length },
          'draining connections',
        );
    });
  }
}
