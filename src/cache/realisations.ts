/**
 * Realisations of CA derivation outputs (`realisations/<drv hash>!<output>.doi`, Nix 2.4-2.34
 * and Lix with `ca-derivations`): which store path a derivation output resolved to. A realisation
 * is kept per slice, next to the output path it names, and follows that path's access exactly:
 * served only from the slice whose copy of the output `/cache` would serve the caller, written
 * only by writers of a slice that holds the output, and collected with it (gc.ts).
 */
import { Conflict, InvalidInput } from '../errors.js';
import type { Principal } from '../identity/principal.js';
import { type SigningKey, signFingerprint, verifyFingerprint } from '../nix/signing.js';
import { type StorePathBase, hashPartOf, parseStorePathBase } from '../nix/store-path.js';
import type { OrgKeyService } from '../org/keys.js';
import type { Storage } from '../storage/types.js';
import type { AuditEvent } from '../audit/log.js';
import type { Reading } from './reading.js';
import type { SignerService } from './signers.js';
import type { TrustedKey } from './upstream-verify.js';
import type { WriteTarget } from './uploading.js';
import type { CacheView } from './view.js';

export interface Realisation {
  id: string;
  outPath: StorePathBase;
  signatures: string[];
  dependentRealisations: Record<string, StorePathBase>;
}

// `sha256:<hex>!<output name>`; output names are store path name characters.
const REALISATION_ID = /^sha256:[0-9a-f]{64}![A-Za-z0-9+\-._?=]{1,200}$/;
// `name:base64`; the name has no whitespace or control characters. Lengths are free (not only
// Ed25519): the signatures are kept as the uploader's, never interpreted here.
const SIGNATURE = /^[\x21-\x39\x3b-\x7e]{1,128}:[A-Za-z0-9+/]+={0,2}$/;
const MAX_SIGNATURES = 32;
const MAX_SIGNATURE_LENGTH = 16 * 1024;
const MAX_DEPENDENCIES = 1024;

export function isRealisationId(text: string): boolean {
  return REALISATION_ID.test(text);
}

/** PURE: a realisation JSON document as Nix writes it, checked field by field. */
export function parseRealisation(value: unknown, expectedId: string): Realisation {
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new InvalidInput('realisation', 'expected a JSON object');
  const v = value as Record<string, unknown>;
  if (typeof v.id !== 'string' || !isRealisationId(v.id))
    throw new InvalidInput('realisation id', 'expected "sha256:<64 hex>!<output name>"');
  if (v.id !== expectedId)
    throw new InvalidInput(
      'realisation id',
      `${JSON.stringify(v.id)} does not match the file name ${JSON.stringify(expectedId)}.doi`,
    );
  if (typeof v.outPath !== 'string') throw new InvalidInput('realisation outPath', 'expected a store path base name');
  const outPath = parseStorePathBase(v.outPath, 'realisation outPath');
  const sigs = v.signatures ?? [];
  if (!Array.isArray(sigs) || sigs.length > MAX_SIGNATURES)
    throw new InvalidInput('realisation signatures', `expected a list of at most ${MAX_SIGNATURES} signatures`);
  for (const s of sigs) {
    if (typeof s !== 'string' || s.length > MAX_SIGNATURE_LENGTH || !SIGNATURE.test(s))
      throw new InvalidInput('realisation signatures', 'each signature must be "<key name>:<base64>"');
  }
  const deps = v.dependentRealisations ?? {};
  if (deps === null || typeof deps !== 'object' || Array.isArray(deps))
    throw new InvalidInput('realisation dependentRealisations', 'expected an object');
  const entries = Object.entries(deps as Record<string, unknown>);
  if (entries.length > MAX_DEPENDENCIES)
    throw new InvalidInput('realisation dependentRealisations', `more than ${MAX_DEPENDENCIES} entries`);
  const dependentRealisations: Record<string, StorePathBase> = {};
  for (const [id, out] of entries) {
    if (!isRealisationId(id) || typeof out !== 'string')
      throw new InvalidInput(
        'realisation dependentRealisations',
        'expected "<realisation id>": "<store path base name>" entries',
      );
    dependentRealisations[id] = parseStorePathBase(out, 'realisation dependentRealisations');
  }
  return { id: v.id, outPath, signatures: sigs as string[], dependentRealisations };
}

/**
 * PURE: what a realisation signature covers (Nix 2.8 `Realisation::fingerprint`): the JSON
 * without `signatures`, as nlohmann dumps it: compact, keys sorted (std::map), also inside
 * `dependentRealisations`.
 */
export function realisationFingerprint(r: Pick<Realisation, 'id' | 'outPath' | 'dependentRealisations'>): string {
  const byId = ([a]: [string, unknown], [b]: [string, unknown]) => (a < b ? -1 : a > b ? 1 : 0);
  const deps = Object.fromEntries(Object.entries(r.dependentRealisations).sort(byId));
  return JSON.stringify({ dependentRealisations: deps, id: r.id, outPath: r.outPath });
}

/**
 * PURE: the uploader's signatures checked. One under a name of the org's own keys is refused
 * (Floe signs with those itself, when serving); one under the name of a key the org trusts
 * (`floe signer add`) must verify. Others (keys nobody here knows) are kept as sent.
 */
export function checkRealisationSignatures(
  r: Realisation,
  ownNames: ReadonlySet<string>,
  trusted: readonly TrustedKey[],
): void {
  const fingerprint = realisationFingerprint(r);
  for (const sig of r.signatures) {
    const name = sig.slice(0, sig.indexOf(':'));
    if (ownNames.has(name)) {
      const why =
        `${JSON.stringify(name)} is a key of this org: Floe signs realisations with it when serving them; ` +
        'upload without that signature';
      throw new InvalidInput('realisation signatures', why);
    }
    const key = trusted.find((k) => k.name === name);
    let verified = false;
    try {
      verified = key !== undefined && verifyFingerprint(key, fingerprint, sig);
    } catch {
      // Not 64 bytes of base64: not an Ed25519 signature, so it cannot be this key's.
    }
    if (key && !verified) {
      const why = `the signature by ${JSON.stringify(name)} does not verify for ${r.id}`;
      throw new InvalidInput('realisation signatures', why);
    }
  }
}

/** PURE: the served document: the uploader's signatures, then one per signing key of the slice's org. */
export function signedRealisation(r: Realisation, keys: readonly SigningKey[]): string {
  const fingerprint = realisationFingerprint(r);
  const own = new Set(keys.map((k) => k.name));
  const kept = r.signatures.filter((s) => !own.has(s.slice(0, s.indexOf(':'))));
  return serialize({ ...r, signatures: [...kept, ...keys.map((k) => signFingerprint(k, fingerprint))] });
}

export interface RealisationDeps {
  storage: Storage;
  reading: Pick<Reading, 'servingSlice'>;
  keys: Pick<OrgKeyService, 'signing' | 'ownNames'>;
  signers?: Pick<SignerService, 'trustedKeys'> | undefined;
  audit?: { append(e: AuditEvent): void };
}

export class RealisationService {
  constructor(private readonly deps: RealisationDeps) {}

  /** The realisation the caller may see, or undefined (missing and denied alike). */
  async find(p: Principal, view: CacheView, id: string): Promise<string | undefined> {
    if (!isRealisationId(id)) return undefined;
    let query = this.deps.storage.db
      .selectFrom('realisations')
      .innerJoin('slices', 'slices.id', 'realisations.slice_id')
      .select(['realisations.slice_id', 'realisations.out_path', 'realisations.body', 'slices.org_id'])
      .where('realisations.id', '=', id);
    if (view.kind === 'slice') query = query.where('realisations.slice_id', '=', view.slice.slice.id);
    const rows = await query.limit(64).execute();
    let best: { body: string; orgId: string; rank: number } | undefined;
    for (const row of rows) {
      // Visible only where the caller would be served this very copy of the output path.
      const serving = await this.deps.reading.servingSlice(p, view, hashPartOf(row.out_path as StorePathBase));
      if (serving?.sliceId === row.slice_id && (!best || serving.rank < best.rank)) {
        best = { body: row.body, orgId: row.org_id, rank: serving.rank };
      }
    }
    if (!best) return undefined;
    // Signed when served, like the narinfo of its output: with the current keys of the slice's org
    // (Nix checks realisation signatures when it copies them into a store requiring signatures).
    return signedRealisation(parseRealisation(JSON.parse(best.body), id), await this.deps.keys.signing(best.orgId));
  }

  /**
   * `PUT realisations/<id>.doi`: stored in the caller's write target, which must hold the output
   * path already (Nix uploads the paths first). The same output again is accepted (signatures
   * merged); another output for the same id is a conflict, never a silent overwrite.
   */
  async put(p: Principal, target: WriteTarget, id: string, json: unknown): Promise<'created' | 'exists'> {
    if (!isRealisationId(id))
      throw new InvalidInput('realisation id', 'expected realisations/sha256:<64 hex>!<output name>.doi');
    const r = parseRealisation(json, id);
    const trusted = this.deps.signers ? await this.deps.signers.trustedKeys(target.org.id) : [];
    checkRealisationSignatures(r, await this.deps.keys.ownNames(target.org.id), trusted);
    const db = this.deps.storage.db;
    const where = `${target.org.name}/${target.slice.name}`;
    const held = await db
      .selectFrom('paths')
      .select('store_path')
      .where('slice_id', '=', target.slice.id)
      .where('hash_part', '=', hashPartOf(r.outPath))
      .where('store_path', '=', r.outPath)
      .executeTakeFirst();
    if (!held)
      throw new InvalidInput(
        'realisation outPath',
        `/nix/store/${r.outPath} is not in ${where}: upload the output path before its realisation`,
      );
    const existing = await db
      .selectFrom('realisations')
      .select(['out_path', 'body'])
      .where('slice_id', '=', target.slice.id)
      .where('id', '=', id)
      .executeTakeFirst();
    if (existing) {
      if (existing.out_path !== r.outPath)
        throw new Conflict(
          `${id} is already realised as /nix/store/${existing.out_path} in ${where}, not /nix/store/${r.outPath}`,
        );
      const before = parseRealisation(JSON.parse(existing.body), id);
      const merged = [...new Set([...before.signatures, ...r.signatures])].slice(0, MAX_SIGNATURES);
      if (merged.length > before.signatures.length) {
        await db
          .updateTable('realisations')
          .set({ body: serialize({ ...before, signatures: merged }) })
          .where('slice_id', '=', target.slice.id)
          .where('id', '=', id)
          .execute();
      }
      return 'exists';
    }
    await db
      .insertInto('realisations')
      .values({
        slice_id: target.slice.id,
        id,
        out_path: r.outPath,
        body: serialize(r),
        created_at: new Date().toISOString(),
      })
      .onConflict((oc) => oc.columns(['slice_id', 'id']).doNothing())
      .execute();
    this.deps.audit?.append({
      principal: p,
      action: 'cache.write',
      target: `${where}:realisations/${id}`,
      orgId: target.org.id,
      detail: { outPath: `/nix/store/${r.outPath}` },
    });
    return 'created';
  }
}

/** The JSON Nix writes (and signs without `signatures`): only the known fields, in Nix's shape. */
function serialize(r: Realisation): string {
  return JSON.stringify({
    dependentRealisations: r.dependentRealisations,
    id: r.id,
    outPath: r.outPath,
    signatures: r.signatures,
  });
}
