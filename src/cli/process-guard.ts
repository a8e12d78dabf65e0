/**
 * The last resort of `floe serve`. Without it, an exception thrown where nothing can catch it (a
 * stream callback, a timer) or a rejected promise nobody awaits ends the process, and with it
 * every request in flight: one bad input from any client would take the server down. Request
 * state lives in the request's own objects and every durable change is a database transaction or
 * a blob committed by rename, so an error escaping one request leaves nothing half-done for the
 * others: log it (it is a bug to fix) and keep serving. Installed only once the server is up, so a
 * failed start still exits.
 */
import type { Logger } from '../log.js';

export function installProcessGuard(log: Logger): void {
  process.on('uncaughtException', (err, origin) => {
    log.error({ err, origin }, 'uncaught exception (a bug: please report it); still serving');
  });
  process.on('unhandledRejection', (reason) => {
    log.error({ err: reason }, 'unhandled promise rejection (a bug: please report it); still serving');
  });
}
