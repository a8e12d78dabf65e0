/**
 * Committing: a verified path becomes visible in exactly one slice, atomically, and only with all
 * its references there (present, or linked in by links.ts). Paths are immutable: identical content
 * again merges signatures, different content is a conflict, because a write token must never
 * replace what others substitute. Quotas are checked inside the same transaction.
 * Over 350 lines: one commit and a batch's shared transaction run the same prepare and apply steps.
 */
import type { AuditEvent } from '../audit/log.js';
import { Conflict, FloeError, Forbidden, InvalidInput, TooLarge } from '../errors.js';
import type { Principal } from '../identity/principal.js';
import { parseContentAddress } from '../nix/content-address.js';
import type { Hash } from '../nix/hash.js';
import { type NarInfo, type NarInfoField, checkExtraFields } from '../nix/narinfo.js';
import { encodeNix32 } from '../nix/nix32.js';
import { parseSignatureLine } from '../nix/signing.js';
import { type StorePathBase, type StorePathHash, hashPartOf } from '../nix/store-path.js';
import { isUniqueViolation } from '../org/service.js';
import type { OrgKeyService } from '../org/keys.js';
import type { SliceResource } from '../policy/actions.js';
import type { Authorizer } from '../policy/authorize.js';
import { lockSharedAgainstGc } from '../storage/locks.js';
import type { Storage } from '../storage/types.js';
import { orgStoredBytes } from './accounting.js';
import { resolveDebugInfo } from './debuginfo.js';
import { verifiedSignerNames } from './link-policy.js';
import type { LinkContext } from './link-policy.js';
import type { Linker, Linking } from './links.js';
import { quotaViolation } from './quota.js';
import { loadExtraFields, renderNarInfo, storeExtraFields } from './render.js';
import type { SourceService } from './sources.js';

export interface PathMetadata {
  storePath: StorePathBase;
  narHash: Hash;
  narSize: number;
  references: StorePathBase[];
  deriver?: StorePathBase;
  ca?: string;
  sigs: string[];
  /** Narinfo fields Floe does not interpret (`Provenance:` …), kept as sent and never signed. */
  extraFields?: NarInfoField[];
  /** Where the path came from when the server fetched it itself (e.g. `upstream:cache-nixos-org`). */
  origin?: string;
}

export type CommitResult = 'created' | 'exists';

/** What a commit needs from a narinfo (uploaded or fetched from an upstream). */
export function metadataOf(info: NarInfo): PathMetadata {
  return {
    storePath: info.storePath,
    narHash: info.narHash,
    narSize: info.narSize,
    references: info.references,
    ...(info.deriver ? { deriver: info.deriver } : {}),
    ...(info.ca ? { ca: info.ca } : {}),
    sigs: info.sigs,
    ...(info.extraFields?.length ? { extraFields: info.extraFields } : {}),
  };
}

export function describeUploader(p: Principal): string {
  switch (p.kind) {
    case 'anonymous':
      return 'anonymous';
    case 'server-admin':
      return `server-admin:${p.tokenId}`;
    case 'token':
      return `${p.subject}:${p.tokenId}`;
  }
}

export interface CommitterDeps {
  storage: Storage;
  authorizer: Authorizer;
  keys: OrgKeyService;
  sources: SourceService;
  linker: Linker;
  audit: { append(e: AuditEvent): void };
  /** Told which hash parts a commit may have changed (the read memo drops them). */
  changed: (hashParts: Iterable<string>) => Promise<void> | void;
}

/**
 * Whose write a commit is. A caller's write is decided by `cache.write` now that the narinfo is
 * known (policies may judge its verified signers). A pull-through fill is the server's own write
 * on a reader's miss, verified against an upstream's trusted keys: the reader asked to read, so
 * it is not judged as the reader's write.
 */
type Author = { kind: 'caller' } | { kind: 'server-fill'; why: 'pull-through' };

export class Committer {
  constructor(private readonly deps: CommitterDeps) {}

  /** The caller's write of one path to `target` (whose slice-level write was admitted already). */
  commit(p: Principal, target: SliceResource, meta: PathMetadata): Promise<CommitResult> {
    return this.write(p, target, meta, { kind: 'caller' });
  }

  /** The server's own write of a verified upstream path into the reader's org, on the reader's miss. */
  fillOnMiss(reader: Principal, target: SliceResource, meta: PathMetadata): Promise<CommitResult> {
    return this.write(reader, target, meta, { kind: 'server-fill', why: 'pull-through' });
  }

  /**
   * The caller's writes of several paths to `target` (whose slice-level write was admitted), in
   * order, each decided and checked exactly as `commit` does it, in one transaction (a path may
   * reference one before it). Optimistic: if any path is refused, or a concurrent writer got in
   * the way, that transaction is rolled back whole and every path is committed alone, in order, by
   * `commit`: one bad path costs the batch its shared transaction, never its other paths. Each
   * path's result or refusal, in order; errors that are not a refusal are thrown.
   */
  async commitAll(
    p: Principal,
    target: SliceResource,
    metas: PathMetadata[],
  ): Promise<Array<CommitResult | FloeError>> {
    const alone = async () => {
      const out: Array<CommitResult | FloeError> = [];
      for (const meta of metas) {
        try {
          out.push(await this.commit(p, target, meta));
        } catch (err) {
          if (!(err instanceof FloeError)) throw err;
          out.push(err);
        }
      }
      return out;
    };
    if (metas.length < 2) return alone();
    const author: Author = { kind: 'caller' };
    const prepared: Prepared[] = [];
    try {
      for (const meta of metas) prepared.push(await this.prepare(p, target, meta, author));
    } catch (err) {
      if (err instanceof FloeError) return alone();
      throw err;
    }
    const touched = new Set<string>(prepared.map((x) => x.hashPart));
    let results: CommitResult[] | undefined;
    try {
      const { storage } = this.deps;
      results = await storage.db.transaction().execute(async (trx) => {
        await lockSharedAgainstGc(trx, storage.dialect);
        const out: CommitResult[] = [];
        for (const x of prepared) out.push(await this.apply(trx, p, target, x, touched));
        return out;
      });
    } catch (err) {
      if (!(err instanceof FloeError) && !isUniqueViolation(err)) throw err;
    } finally {
      await this.deps.changed(touched);
    }
    if (!results) return alone();
    for (const [i, x] of prepared.entries())
      if (results[i] === 'created') this.audit(p, target, metas[i]!, x.narHashNix32, author);
    return results;
  }

  private async write(p: Principal, target: SliceResource, meta: PathMetadata, author: Author): Promise<CommitResult> {
    const prepared = await this.prepare(p, target, meta, author);
    // Any commit can change what a hash resolves to (new path, merged signatures, linked closure).
    const touched = new Set<string>([prepared.hashPart]);
    try {
      for (let attempt = 1; ; attempt++) {
        try {
          const { storage } = this.deps;
          const result = await storage.db.transaction().execute(async (trx) => {
            await lockSharedAgainstGc(trx, storage.dialect);
            return this.apply(trx, p, target, prepared, touched);
          });
          if (result === 'created') this.audit(p, target, meta, prepared.narHashNix32, author);
          return result;
        } catch (err) {
          // Another replica committed the same path (or linked the same closure) concurrently:
          // run again, and the transaction sees their row.
          if (!isUniqueViolation(err) || attempt >= 3) throw err;
        }
      }
    } finally {
      // Other workers and replicas drop their memo of these paths before the write answers.
      await this.deps.changed(touched);
    }
  }

  /** What a commit checks and reads before its transaction, and its decision of `cache.write` for the path. */
  private async prepare(p: Principal, target: SliceResource, meta: PathMetadata, author: Author): Promise<Prepared> {
    const hashPart = hashPartOf(meta.storePath);
    const narHashNix32 = encodeNix32(meta.narHash.digest);
    for (const sig of meta.sigs) parseSignatureLine(sig);
    if (meta.ca) parseContentAddress(meta.ca);
    if (meta.extraFields) checkExtraFields(meta.extraFields);
    // Nix never lists a reference twice; a list that does is an attempt to multiply work.
    if (new Set(meta.references).size !== meta.references.length) {
      throw new InvalidInput('References', 'the same store path is listed more than once');
    }
    // Signatures under the org's own key names are the server's to make, never the uploader's.
    const ownNames = await this.deps.keys.ownNames(target.org.id);
    const uploaderSigs = meta.sigs.filter((s) => !ownNames.has(parseSignatureLine(s).keyName));
    const partial = await this.deps.linker.signersAndUpstreams(target);
    const signingKeys = await this.deps.keys.signing(target.org.id);
    // Read before the transaction: on SQLite a query outside it would wait for it forever.
    const viewOrder = await this.deps.sources.viewOf(p);
    if (author.kind === 'caller') {
      // Only signatures that verify against a key the org trusts count.
      const signers = verifiedSignerNames({ ...meta, sigs: uploaderSigs }, partial.orgSigners);
      const decision = this.deps.authorizer.authorize(p, 'cache.write', target, { narinfoSignatures: signers });
      if (!decision.allowed) {
        const where = `${target.org.name}/${target.slice.name}`;
        throw new Forbidden(`not allowed to write ${meta.storePath} to ${where}: ${decision.reason}`);
      }
    }
    const stored = { ...meta, sigs: uploaderSigs };
    return { meta: stored, hashPart, narHashNix32, before: { partial, signingKeys, viewOrder } };
  }

  private audit(p: Principal, target: SliceResource, meta: PathMetadata, narHashNix32: string, author: Author): void {
    const origin = meta.origin && (author.kind === 'server-fill' ? `${meta.origin} (${author.why})` : meta.origin);
    this.deps.audit.append({
      principal: p,
      action: 'cache.write',
      target: `${target.org.name}/${target.slice.name}:/nix/store/${meta.storePath}`,
      orgId: target.org.id,
      detail: { narHash: `sha256:${narHashNix32}`, narSize: meta.narSize, ...(origin ? { origin } : {}) },
    });
  }

  /** One path's commit inside a transaction that holds the lock shared with GC. */
  private async apply(
    trx: Storage['db'],
    p: Principal,
    target: SliceResource,
    prepared: Prepared,
    touched: Set<string>,
  ): Promise<CommitResult> {
    const { linker } = this.deps;
    const { meta, hashPart, narHashNix32 } = prepared;
    const { signingKeys, viewOrder, partial } = prepared.before;
    const where = `${target.org.name}/${target.slice.name}`;
    const nar = await trx.selectFrom('nars').selectAll().where('nar_hash', '=', narHashNix32).executeTakeFirst();
    if (!nar) throw new InvalidInput('NAR', 'the NAR for this path is not stored; upload it first');

    const existing = await trx
      .selectFrom('paths')
      .selectAll()
      .where('slice_id', '=', target.slice.id)
      .where('hash_part', '=', hashPart)
      .executeTakeFirst();
    if (existing) {
      if (existing.nar_hash !== narHashNix32 || existing.store_path !== meta.storePath) {
        const has = `sha256:${existing.nar_hash}`;
        throw new Conflict(
          `${meta.storePath} is already in ${where} with different content (${has}); store paths are immutable`,
        );
      }
      const had = existing.sigs.split('\n').filter(Boolean);
      const merged = [...new Set([...had, ...meta.sigs])];
      // Unknown fields are the first writer's, like the path (a path linked in without any takes
      // the next upload's).
      const extras = existing.extra_fields ? loadExtraFields(existing.extra_fields) : (meta.extraFields ?? []);
      const addsExtras = !existing.extra_fields && extras.length > 0;
      if (merged.length !== had.length || addsExtras) {
        await trx
          .updateTable('paths')
          .set({
            sigs: merged.join('\n'),
            extra_fields: storeExtraFields(extras),
            narinfo: renderNarInfo({ ...meta, sigs: merged, extraFields: extras }, nar, signingKeys),
          })
          .where('slice_id', '=', target.slice.id)
          .where('hash_part', '=', hashPart)
          .execute();
      }
      await resolveDebugInfo(trx, target.slice.id, narHashNix32);
      await consumeUploadRecords(trx, target, narHashNix32);
      return 'exists';
    }

    // Closure completeness: every reference must be in the target slice, or be linked in from a
    // source the target may take it from (link-policy.ts); nothing else enters.
    const refs = meta.references.filter((r) => r !== meta.storePath);
    const present = new Map<string, string>();
    for (let i = 0; i < refs.length; i += 500) {
      const hashes = refs.slice(i, i + 500).map((r) => hashPartOf(r));
      const rows = await trx
        .selectFrom('paths')
        .select(['hash_part', 'store_path'])
        .where('slice_id', '=', target.slice.id)
        .where('hash_part', 'in', hashes)
        .execute();
      for (const r of rows) present.set(r.hash_part, r.store_path);
    }
    const missing: string[] = [];
    let linking: Linking | undefined;
    for (const ref of refs) {
      const inTarget = present.get(hashPartOf(ref));
      if (inTarget !== undefined) {
        // The same hash under another name is not this reference, and nothing can link it.
        if (inTarget !== ref) missing.push(ref);
        continue;
      }
      // The link context's trusted sources are read (in this transaction) only once needed.
      linking ??= { ctx: await linker.withSources(trx, target, partial), signingKeys, viewOrder };
      const linked = await linker.linkClosure(trx, p, target, ref, touched, linking, describeUploader(p));
      if (!linked) missing.push(ref);
    }
    if (missing.length > 0) {
      const shown = missing.slice(0, 50).join(' ') + (missing.length > 50 ? ` and ${missing.length - 50} more` : '');
      throw new InvalidInput(
        'References',
        `${missing.length} missing from ${where} (not present, not linkable from a source this slice trusts, ` +
          `and not available from a trusted upstream): ${shown}; upload the closure in dependency order to ` +
          `${where}'s own URL (nix copy --to <server>/cache/${where}, or floe push, upload exactly what is missing)`,
      );
    }
    const settings = await trx
      .selectFrom('org_settings')
      .select('quota_bytes')
      .where('org_id', '=', target.org.id)
      .executeTakeFirst();
    const quota = settings?.quota_bytes == null ? null : Number(settings.quota_bytes);
    const before = quota === null ? 0 : await orgStoredBytes(trx, target.org.id);

    await trx
      .insertInto('paths')
      .values({
        slice_id: target.slice.id,
        hash_part: hashPart,
        store_path: meta.storePath,
        nar_hash: narHashNix32,
        nar_size: meta.narSize,
        refs: meta.references.join(' '),
        deriver: meta.deriver ?? null,
        ca: meta.ca ?? null,
        sigs: meta.sigs.join('\n'),
        narinfo: renderNarInfo(meta, nar, signingKeys),
        extra_fields: storeExtraFields(meta.extraFields),
        uploaded_by: meta.origin ? `${meta.origin} for ${describeUploader(p)}` : describeUploader(p),
        created_at: new Date().toISOString(),
      })
      .execute();
    if (quota !== null) {
      // Checked after the inserts (linked closures count too); throwing rolls everything back.
      const violation = quotaViolation(target.org.name, quota, before, await orgStoredBytes(trx, target.org.id));
      if (violation) throw new TooLarge(violation);
    }
    await resolveDebugInfo(trx, target.slice.id, narHashNix32);
    await consumeUploadRecords(trx, target, narHashNix32);
    return 'created';
  }
}

/** A path's commit as decided before its transaction: the metadata stored, its keys, what linking needs. */
interface Prepared {
  meta: PathMetadata;
  hashPart: StorePathHash;
  narHashNix32: string;
  before: Omit<Linking, 'ctx'> & { partial: Omit<LinkContext, 'trustedSources'> };
}

/**
 * Once a path row holds the NAR, the server's own upload records for it (batch uploads and
 * mirrored NARs, which only keep it from GC until the commit) have served their purpose: left in
 * place they would keep a collected path's NAR, and count against the quota, until they expire.
 * Records of files a client uploaded (`nix copy`'s `PUT nar/<file>`) stay: they are that client's
 * proof of possession and what `HEAD nar/<file>` answers, for concurrent pushes of the same path.
 */
async function consumeUploadRecords(trx: Storage['db'], target: SliceResource, narHashNix32: string): Promise<void> {
  await trx
    .deleteFrom('nar_uploads')
    .where('slice_id', '=', target.slice.id)
    .where('nar_hash', '=', narHashNix32)
    .where((eb) => eb.or([eb('file_name', 'like', 'batch/%'), eb('file_name', 'like', 'upstream/%')]))
    .execute();
}
