/**
 * The audit log's tamper evidence, pure: every entry's hash covers the previous entry's hash and
 * the entry's canonical JSON, so changing, dropping or reordering an entry breaks every later hash.
 */
import { createHash } from 'node:crypto';

export const GENESIS_HASH = '0'.repeat(64);

export interface ChainedFields {
  seq: number;
  at: string;
  org_id: string | null;
  actor: string;
  token_id: string | null;
  action: string;
  target: string;
  outcome: string;
  reason: string;
  detail: string;
}

/** JSON with keys sorted at every level, so the same entry always hashes the same. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

export function entryHash(prevHash: string, entry: ChainedFields): string {
  const fields: ChainedFields = {
    seq: Number(entry.seq),
    at: entry.at,
    org_id: entry.org_id,
    actor: entry.actor,
    token_id: entry.token_id,
    action: entry.action,
    target: entry.target,
    outcome: entry.outcome,
    reason: entry.reason,
    detail: entry.detail,
  };
  return createHash('sha256').update(prevHash).update('\n').update(canonicalJson(fields)).digest('hex');
}

export interface ChainBreak {
  seq: number;
  problem: string;
}

/** Checks a run of consecutive entries; `prevHash` is the hash of the entry before the first. */
export function verifyChain(
  entries: Array<ChainedFields & { prev_hash: string; hash: string }>,
  prevHash: string,
  prevSeq: number,
): ChainBreak | undefined {
  for (const e of entries) {
    const seq = Number(e.seq);
    if (seq !== prevSeq + 1) return { seq, problem: `entry ${prevSeq + 1} is missing (next is ${seq})` };
    if (e.prev_hash !== prevHash) return { seq, problem: 'does not link to the previous entry' };
    if (entryHash(prevHash, e) !== e.hash) return { seq, problem: 'content does not match its hash (altered)' };
    prevHash = e.hash;
    prevSeq = seq;
  }
  return undefined;
}
