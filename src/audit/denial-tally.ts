/**
 * Denials, summarized (PURE). A flood of refused requests must neither fill the audit queue (and
 * push out the events that matter: token.create, policy.apply) nor cost a row each. So the audit
 * log keeps one tally per org, actor, action, target, reason and minute: the first denial of a tally is
 * written in full (who, why, from where), the rest of that minute only as a count. Denials an org
 * may only count (outside callers probing its resources) are tallies without a first entry.
 *
 * The number of tallies is bounded: past the limit a new key folds into one tally per org
 * ("various callers"), so memory stays bounded and nothing refused goes uncounted.
 */

export interface DenialKey {
  orgId: string | null;
  actor: string;
  tokenId: string | null;
  action: string;
  target: string;
}

export interface Tally extends DenialKey {
  /** Denials not written one by one (after the first, or all of them for a count-only tally). */
  count: number;
  /** Whether the first denial was written as a full entry. */
  firstWritten: boolean;
  reason: string;
  since: string;
}

/** A summary entry due for the log. */
export interface DenialSummary extends DenialKey {
  outcome: 'deny';
  reason: string;
  detail: { count: number; since: string; summary: true };
}

export const OUTSIDE_CALLERS = 'outside callers';
const VARIOUS = 'various callers';

export class DenialTally {
  private readonly tallies = new Map<string, Tally>();

  constructor(private readonly maxTallies = 20_000) {}

  get size(): number {
    return this.tallies.size;
  }

  /**
   * Counts one denial. Returns true if the caller should write it as a full entry (the first of
   * its tally this minute, and `mayWriteFirst`), false if it was only counted.
   */
  count(key: DenialKey, reason: string, nowIso: string, mayWriteFirst: boolean): boolean {
    const k = keyOf(key, reason);
    const hit = this.tallies.get(k);
    if (hit) {
      hit.count++;
      return false;
    }
    if (this.tallies.size >= this.maxTallies) {
      const folded: DenialKey = {
        orgId: key.orgId,
        actor: VARIOUS,
        tokenId: null,
        action: 'various',
        target: 'various',
      };
      const fk = keyOf(folded, '');
      const f = this.tallies.get(fk);
      if (f) f.count++;
      // The fold keys (one per org) may exceed the limit: they are bounded by the orgs that exist.
      else
        this.tallies.set(fk, {
          ...folded,
          count: 1,
          firstWritten: false,
          reason: 'denials of many callers and resources',
          since: nowIso,
        });
      return false;
    }
    this.tallies.set(k, { ...key, count: mayWriteFirst ? 0 : 1, firstWritten: mayWriteFirst, reason, since: nowIso });
    return mayWriteFirst;
  }

  /**
   * Summaries of what was counted. Tallies that started before `cutoffIso` end; with `all`, the
   * others report their count so far and go on (their first entry is written, so later denials of
   * the minute are still only counted).
   */
  drain(cutoffIso: string, all = false): DenialSummary[] {
    const out: DenialSummary[] = [];
    for (const [k, t] of this.tallies) {
      const ended = t.since < cutoffIso;
      if (!ended && !all) continue;
      if (ended) this.tallies.delete(k);
      if (t.count === 0) continue;
      out.push({
        orgId: t.orgId,
        actor: t.actor,
        tokenId: t.tokenId,
        action: t.action,
        target: t.target,
        outcome: 'deny',
        reason: summaryReason(t),
        detail: { count: t.count, since: t.since, summary: true },
      });
      if (!ended) {
        t.count = 0;
        t.firstWritten = true;
      }
    }
    return out;
  }
}

// The reason is part of the key: a login refused for another reason is another story to tell.
function keyOf(k: DenialKey, reason: string): string {
  return JSON.stringify([k.orgId, k.actor, k.tokenId, k.action, k.target, reason]);
}

function summaryReason(t: Tally): string {
  const n = `${t.count} request${t.count === 1 ? '' : 's'}`;
  if (t.actor === OUTSIDE_CALLERS) return `${n} by callers outside this org (or anonymous) refused since ${t.since}`;
  if (t.firstWritten)
    return `${t.count} more request${t.count === 1 ? '' : 's'} refused since ${t.since} (as the first: ${t.reason.slice(0, 300)})`;
  return `${n} refused since ${t.since}: ${t.reason.slice(0, 300)}`;
}
