/**
 * The audit trail: an append-only, hash-chained log of every write, publish, login, token, trust
 * and policy change and every denied request, plus a per-day summary of reads (who fetched which
 * path, how many bytes) so monitoring cache use does not need a row per narinfo hit.
 *
 * Appends are buffered and written in batches; `flush()` forces them out. Denials are summarized
 * (one full entry per caller, action, resource and minute, then a count), so a flood of refused
 * requests costs a few rows and never crowds out the events. Replicas append concurrently: the
 * gapless `seq` primary key makes a racing batch fail and retry on top of the winner.
 * Over 350 lines: appending, batching, querying and verifying share the chain's sequence and
 * buffer, so they change together (the pure chain is chain.ts, the denial summary denial-tally.ts).
 */
import type { Logger } from '../log.js';
import { describePrincipal, type Principal } from '../identity/principal.js';
import type { Action, RequestFacts, Resource } from '../policy/actions.js';
import type { AuditSink, Decision } from '../policy/authorize.js';
import type { Db, Schema } from '../storage/types.js';
import type { AuditAction } from './actions.js';
import { DenialTally, OUTSIDE_CALLERS } from './denial-tally.js';
import { type ChainBreak, type ChainedFields, entryHash, GENESIS_HASH, verifyChain } from './chain.js';

export interface AuditEvent {
  principal: Principal;
  /** One of the closed set in `actions.ts` (cache.write, flake.publish, auth.login, token.create…). */
  action: AuditAction;
  /** What was acted on, human-readable: `acme/default:/nix/store/...`, `acme/hello@1.2.3`, a token id. */
  target: string;
  orgId: string | null;
  outcome?: 'allow' | 'deny' | 'event';
  reason?: string;
  detail?: Record<string, unknown>;
}

export interface AuditEntry {
  seq: number;
  at: string;
  orgId: string | null;
  actor: string;
  tokenId: string | null;
  action: string;
  target: string;
  outcome: string;
  reason: string;
  detail: Record<string, unknown>;
  hash: string;
}

export interface AuditQuery {
  orgId?: string;
  /** Exact action, or a prefix ending in "." (e.g. "cache."). */
  action?: string;
  outcome?: 'allow' | 'deny' | 'event';
  /** Substring of the actor (e.g. a CI subject). */
  actor?: string;
  since?: string;
  until?: string;
  afterSeq?: number;
  /** Entries before this seq (with newestFirst: the next page of older entries). */
  beforeSeq?: number;
  /** Newest first (the web interface); default oldest first (exports, `floe audit`). */
  newestFirst?: boolean;
  limit?: number;
}

/** An entry waiting for its place in the chain. */
type Pending = Omit<ChainedFields, 'seq'>;

/** A per-day read counter, as the table stores it. */
type ReadCount = Schema['read_summary'];

/** Past this many queued entries, denials are only counted (events are always queued). */
const MAX_PENDING = 20_000;
/** A queue this long is flushed at once instead of at the next tick. */
const FLUSH_AT = 2_000;

function resourceLabel(r: Resource): string {
  switch (r.type) {
    case 'slice':
      return `slice ${r.org.name}/${r.slice.name}`;
    case 'flake':
      return `flake ${r.org.name}/${r.flake.name}`;
    case 'org':
      return `org ${r.org.name}`;
    case 'server':
      return 'server';
  }
}

export class AuditLog implements AuditSink {
  private pending: Pending[] = [];
  private reads = new Map<string, ReadCount>();
  private flushing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastCheckpointMs = 0;

  constructor(
    private readonly db: Db,
    private readonly log: Logger,
  ) {}

  /**
   * Entries are written every `intervalMs`; the read summary every `readsEveryMs` (it is a counter,
   * and on embedded SQLite a large upsert briefly holds the only writer and the event loop).
   */
  start(intervalMs = 500, readsEveryMs = 10_000): void {
    let last = Date.now();
    this.timer = setInterval(() => {
      const withReads = Date.now() - last >= readsEveryMs;
      if (withReads) last = Date.now();
      void this.flush(withReads, false).catch((err) => this.log.error({ err }, 'audit flush failed; will retry'));
    }, intervalMs);
    this.timer.unref();
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.flush();
  }

  /**
   * Authorizer hook: denials are always recorded; allowed decisions are recorded as the events they
   * lead to. A denial of a caller from outside the resource's org is recorded in the caller's own
   * org (anonymous callers: server-wide only) and reaches the resource's org only as an anonymous
   * count per minute: an org's audit log never shows who elsewhere probed it, nor tells another
   * org what this one holds.
   */
  record(principal: Principal, action: Action, resource: Resource, decision: Decision, facts: RequestFacts): void {
    if (decision.allowed) return;
    const resourceOrg = resource.type === 'server' ? null : resource.org.id;
    const callerOrg = principal.kind === 'token' ? principal.org.id : null;
    const foreign = resourceOrg !== null && principal.kind !== 'server-admin' && callerOrg !== resourceOrg;
    const target = resourceLabel(resource);
    if (foreign)
      this.denials.count(
        { orgId: resourceOrg, actor: OUTSIDE_CALLERS, tokenId: null, action, target },
        decision.reason,
        new Date().toISOString(),
        false,
      );
    this.append({
      principal,
      action,
      target,
      orgId: foreign ? callerOrg : resourceOrg,
      outcome: 'deny',
      reason: decision.reason,
      detail: {
        decidedBy: decision.decidedBy,
        ...(decision.policyVersion !== undefined ? { policyVersion: decision.policyVersion } : {}),
        ...(facts.narinfoSignatures ? { narinfoSignatures: facts.narinfoSignatures } : {}),
      },
    });
  }

  /**
   * Queues an entry. Events (token.create, policy.apply, …) are never dropped: a long queue is
   * flushed at once instead of waiting for the timer. Denials are tallied (`denial-tally.ts`): the
   * first per org, actor, action, target and minute is written in full, the rest as a count, and
   * while the queue is long even the first is only counted.
   */
  append(e: AuditEvent): void {
    const at = new Date().toISOString();
    const orgId = e.orgId ?? (e.principal.kind === 'token' ? e.principal.org.id : null);
    const actor = describePrincipal(e.principal);
    const tokenId = e.principal.kind === 'anonymous' ? null : e.principal.tokenId;
    const target = e.target.slice(0, 1000);
    const reason = (e.reason ?? '').slice(0, 1000);
    const outcome = e.outcome ?? 'event';
    if (
      outcome === 'deny' &&
      !this.denials.count(
        { orgId, actor, tokenId, action: e.action, target },
        reason,
        at,
        this.pending.length < MAX_PENDING,
      )
    )
      return;
    const client = e.principal.client;
    this.pending.push({
      at,
      org_id: orgId,
      actor,
      token_id: tokenId,
      action: e.action,
      target,
      outcome,
      reason,
      detail: JSON.stringify({
        ...(client
          ? {
              ip: client.ip,
              ...(client.country ? { country: client.country } : {}),
              ...(client.requestId ? { requestId: client.requestId } : {}),
            }
          : {}),
        ...(e.principal.kind === 'token' && e.principal.identity
          ? { identity: `${e.principal.identity.provider} ${e.principal.identity.issuer}` }
          : {}),
        ...e.detail,
      }),
    });
    if (this.pending.length >= FLUSH_AT) this.flushSoon();
  }

  /** A long queue is written now rather than at the next tick (one such flush at a time). */
  private flushSoon(): void {
    if (this.flushingSoon) return;
    this.flushingSoon = true;
    void this.flush(false, false)
      .catch((err: unknown) => this.log.error({ err }, 'audit flush failed; will retry'))
      .finally(() => {
        this.flushingSoon = false;
      });
  }

  private flushingSoon = false;
  private readonly denials = new DenialTally(MAX_PENDING);

  /** Summaries of the denial tallies a minute old (`all`: every tally, up to now). */
  private drainDenials(all: boolean): Pending[] {
    if (this.denials.size === 0) return [];
    const at = new Date().toISOString();
    return this.denials.drain(new Date(Date.now() - 60_000).toISOString(), all).map((d) => ({
      at,
      org_id: d.orgId,
      actor: d.actor,
      token_id: d.tokenId,
      action: d.action,
      target: d.target,
      outcome: 'deny',
      reason: d.reason.slice(0, 1000),
      detail: JSON.stringify(d.detail),
    }));
  }

  /** Appends and waits until the entry is stored (for changes an admin expects to see at once). */
  async appendNow(e: AuditEvent): Promise<void> {
    this.append(e);
    // Denial counts keep running (an admin change in a flood must not restart every tally).
    await this.flush(true, false);
  }

  /** Counts a read for the summary (one row per day, org, principal and store path). */
  recordRead(principal: Principal, orgId: string, storePath: string, kind: 'narinfo' | 'nar', bytes = 0): void {
    const day = this.today();
    // Reads of an org's (public or followed) slices by other orgs' members are counted without
    // their names: who in acme substitutes from a partner's slice is acme's business.
    const actor =
      principal.kind === 'token' && principal.org.id !== orgId ? 'outside callers' : describePrincipal(principal);
    const key = `${day}|${orgId}|${actor}|${storePath}`;
    let r = this.reads.get(key);
    if (!r) {
      if (this.reads.size >= MAX_PENDING) return;
      r = { day, org_id: orgId, actor, store_path: storePath, narinfo_hits: 0, nar_downloads: 0, bytes: 0 };
      this.reads.set(key, r);
    }
    if (kind === 'narinfo') r.narinfo_hits++;
    else {
      r.nar_downloads++;
      r.bytes += bytes;
    }
  }

  private day = { name: '', until: 0 };

  /** The UTC day (YYYY-MM-DD), formatted once per day rather than once per read. */
  private today(): string {
    const now = Date.now();
    if (now >= this.day.until || now < this.day.until - 86_400_000) {
      const name = new Date(now).toISOString().slice(0, 10);
      this.day = { name, until: Date.parse(`${name}T00:00:00.000Z`) + 86_400_000 };
    }
    return this.day.name;
  }

  /**
   * Writes what is queued (the read summary too unless `withReads` is false; denial counts up to
   * now unless `allDenialCounts` is false, else those a minute old).
   */
  async flush(withReads = true, allDenialCounts = true): Promise<void> {
    // One flush at a time; a caller arriving mid-flush waits for it and then flushes what is left.
    while (this.flushing) await this.flushing;
    if (this.pending.length === 0 && (!withReads || this.reads.size === 0) && this.denials.size === 0) return;
    this.flushing = this.flushOnce(withReads, allDenialCounts).finally(() => {
      this.flushing = undefined;
    });
    await this.flushing;
  }

  private async flushOnce(withReads: boolean, allDenialCounts: boolean): Promise<void> {
    const batch = this.pending.concat(this.drainDenials(allDenialCounts));
    this.pending = [];
    const reads = withReads ? [...this.reads.values()] : [];
    if (withReads) this.reads = new Map();
    try {
      if (batch.length > 0) await this.appendBatch(batch);
    } catch (err) {
      this.pending = batch.concat(this.pending);
      throw err;
    }
    if (reads.length > 0) {
      await this.db.transaction().execute(async (trx) => {
        // Multi-row upserts: a few statements per flush, not one per path.
        for (let i = 0; i < reads.length; i += 500) {
          await trx
            .insertInto('read_summary')
            .values(reads.slice(i, i + 500))
            .onConflict((oc) =>
              oc.columns(['day', 'org_id', 'actor', 'store_path']).doUpdateSet((eb) => ({
                narinfo_hits: eb('read_summary.narinfo_hits', '+', eb.ref('excluded.narinfo_hits')),
                nar_downloads: eb('read_summary.nar_downloads', '+', eb.ref('excluded.nar_downloads')),
                bytes: eb('read_summary.bytes', '+', eb.ref('excluded.bytes')),
              })),
            )
            .execute();
        }
      });
    }
  }

  /**
   * The chain only proves that nothing was changed *after* a hash you already hold: someone who can
   * write the database can rewrite an entry and recompute every later hash. So the head is written
   * to the log (shipped elsewhere) at most once a minute; `verify` with such an anchor catches a
   * rewrite of anything before it.
   */
  private checkpoint(head: { seq: number; hash: string } | undefined): void {
    if (!head || Date.now() - this.lastCheckpointMs < 60_000) return;
    this.lastCheckpointMs = Date.now();
    this.log.info({ auditSeq: head.seq, auditHead: head.hash }, 'audit checkpoint');
  }

  private async appendBatch(batch: Pending[]): Promise<void> {
    let head: { seq: number; hash: string } | undefined;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.db.transaction().execute(async (trx) => {
          const last = await trx
            .selectFrom('audit_log')
            .select(['seq', 'hash'])
            .orderBy('seq', 'desc')
            .limit(1)
            .executeTakeFirst();
          let seq = last ? Number(last.seq) : 0;
          let prev = last?.hash ?? GENESIS_HASH;
          const rows = batch.map((p) => {
            seq++;
            const hash = entryHash(prev, { seq, ...p });
            const row = { seq, ...p, prev_hash: prev, hash };
            prev = hash;
            return row;
          });
          for (let i = 0; i < rows.length; i += 200)
            await trx
              .insertInto('audit_log')
              .values(rows.slice(i, i + 200))
              .execute();
          head = { seq, hash: prev };
        });
        this.checkpoint(head);
        return;
      } catch (err) {
        // Another replica appended the same seq first: chain on top of it.
        if (attempt < 20 && isConflict(err)) continue;
        throw err;
      }
    }
  }

  async query(q: AuditQuery): Promise<AuditEntry[]> {
    let sel = this.db
      .selectFrom('audit_log')
      .selectAll()
      .orderBy('seq', q.newestFirst ? 'desc' : 'asc')
      .limit(Math.min(Math.max(q.limit ?? 100, 1), 5000));
    if (q.orgId !== undefined) sel = sel.where('org_id', '=', q.orgId);
    if (q.action)
      sel = q.action.endsWith('.')
        ? sel.where('action', 'like', `${q.action.replace(/[%_]/g, '')}%`)
        : sel.where('action', '=', q.action);
    if (q.outcome) sel = sel.where('outcome', '=', q.outcome);
    if (q.actor) sel = sel.where('actor', 'like', `%${q.actor.replace(/[%_]/g, '')}%`);
    if (q.since) sel = sel.where('at', '>=', q.since);
    if (q.until) sel = sel.where('at', '<', q.until);
    if (q.afterSeq !== undefined) sel = sel.where('seq', '>', q.afterSeq);
    if (q.beforeSeq !== undefined) sel = sel.where('seq', '<', q.beforeSeq);
    const rows = await sel.execute();
    return rows.map((r) => ({
      seq: Number(r.seq),
      at: r.at,
      orgId: r.org_id,
      actor: r.actor,
      tokenId: r.token_id,
      action: r.action,
      target: r.target,
      outcome: r.outcome,
      reason: r.reason,
      detail: JSON.parse(r.detail) as Record<string, unknown>,
      hash: r.hash,
    }));
  }

  /**
   * Re-walks the whole chain. With `anchor` (a seq and hash recorded earlier, e.g. from an
   * `audit checkpoint` log line), also checks that the chain still passes through it.
   */
  async verify(anchor?: {
    seq: number;
    hash: string;
  }): Promise<{ ok: boolean; entries: number; headHash: string; break?: ChainBreak }> {
    let prevHash = GENESIS_HASH;
    let prevSeq = 0;
    let anchorSeen = false;
    for (;;) {
      const rows = await this.db
        .selectFrom('audit_log')
        .selectAll()
        .where('seq', '>', prevSeq)
        .orderBy('seq', 'asc')
        .limit(2000)
        .execute();
      if (rows.length === 0) {
        if (anchor && !anchorSeen)
          return {
            ok: false,
            entries: prevSeq,
            headHash: prevHash,
            break: { seq: anchor.seq, problem: 'the anchored entry is gone (the log was truncated)' },
          };
        return { ok: true, entries: prevSeq, headHash: prevHash };
      }
      const broken = verifyChain(rows, prevHash, prevSeq);
      if (broken) return { ok: false, entries: prevSeq, headHash: prevHash, break: broken };
      if (anchor) {
        const at = rows.find((r) => Number(r.seq) === anchor.seq);
        if (at) {
          anchorSeen = true;
          if (at.hash !== anchor.hash)
            return {
              ok: false,
              entries: prevSeq,
              headHash: prevHash,
              break: { seq: anchor.seq, problem: 'differs from the anchor: the log was rewritten up to here' },
            };
        }
      }
      prevSeq = Number(rows.at(-1)!.seq);
      prevHash = rows.at(-1)!.hash;
    }
  }

  async readSummary(orgId: string, opts: { since?: string; actor?: string; limit?: number } = {}) {
    let sel = this.db
      .selectFrom('read_summary')
      .selectAll()
      .where('org_id', '=', orgId)
      .orderBy('day', 'desc')
      .orderBy('bytes', 'desc')
      .limit(Math.min(opts.limit ?? 500, 5000));
    if (opts.since) sel = sel.where('day', '>=', opts.since.slice(0, 10));
    if (opts.actor) sel = sel.where('actor', '=', opts.actor);
    const rows = await sel.execute();
    return rows.map((r) => ({
      day: r.day,
      actor: r.actor,
      storePath: r.store_path,
      narinfoHits: Number(r.narinfo_hits),
      narDownloads: Number(r.nar_downloads),
      bytes: Number(r.bytes),
    }));
  }
}

function isConflict(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  return (
    e.code === '23505' ||
    e.code === 'SQLITE_CONSTRAINT_PRIMARYKEY' ||
    /UNIQUE constraint|duplicate key/i.test(e.message ?? '')
  );
}
