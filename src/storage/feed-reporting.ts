/**
 * How the PostgreSQL change feed's events reach the operator: connection failures as warnings,
 * and replicas that did not acknowledge a notice in time as a counter (every time) and a warning
 * (at most once a minute per replica, since a stuck replica would otherwise log once per write).
 */
import type { Logger } from '../log.js';
import { ACK_TIMEOUT_MS } from './acks.js';
import type { FeedEvents } from './sql/postgres.js';

export const UNANSWERED_WARNING_INTERVAL_MS = 60_000;

export function reportFeedEvents(
  log: Pick<Logger, 'warn'>,
  countUnanswered: (replicas: number) => void,
  now: () => number = Date.now,
): FeedEvents {
  const lastWarned = new Map<string, number>();
  return {
    error(err) {
      log.warn({ err: { message: err.message } }, 'change feed: PostgreSQL connection failed (reconnecting)');
    },
    unanswered(listeners) {
      countUnanswered(listeners.length);
      const t = now();
      const due = listeners.filter((l) => t - (lastWarned.get(l) ?? -Infinity) >= UNANSWERED_WARNING_INTERVAL_MS);
      if (due.length === 0) return;
      for (const l of due) lastWarned.set(l, t);
      // Forget replicas not heard of for long (they come and go with deploys).
      for (const [l, at] of lastWarned) if (t - at > 10 * UNANSWERED_WARNING_INTERVAL_MS) lastWarned.delete(l);
      log.warn(
        { replicas: due },
        `change feed: ${due.length === 1 ? 'a replica' : `${due.length} replicas`} did not acknowledge a change within ${ACK_TIMEOUT_MS} ms; ` +
          'the write went on without them (stuck or overloaded? their memoized misses may be stale for up to 2 s)',
      );
    },
  };
}
