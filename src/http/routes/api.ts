/**
 * Floe's own JSON API (`/api/v1`): orgs, slices, tokens, and batch cache operations for the CLI.
 * Routes only parse, call a service (src/admin authorizes and audits) and render; the groups with
 * their own concerns are their own files (auth, storage, policy, sources, registry, compat/).
 * Over 350 lines only by its route lines and their zod bodies: splitting them would scatter /api/v1.
 */
import type { AuditLog } from '../../audit/log.js';
import type { PolicyStore } from '../../org/policies.js';
import type { SignerService } from '../../cache/signers.js';
import { policyRoutes } from './policy.js';
import { InvalidInput, NotFound, TooLarge } from '../../errors.js';
import { parseTtl, type TokenService } from '../../identity/tokens.js';
import type { OrgService } from '../../org/service.js';
import type { AdminServices } from '../../admin/index.js';
import { adminOrg, routeGuards } from '../admin-guards.js';
import type { IncomingMessage } from 'node:http';
import { Hono } from 'hono';
import { z } from 'zod';
import type { Authorizer } from '../../policy/authorize.js';
import type { CacheService } from '../../cache/service.js';
import type { WriteTarget } from '../../cache/uploading.js';
import { compressionFromName } from '../../cache/compression.js';
import { formatNix32Hash, parseHash } from '../../nix/hash.js';
import { parseStorePath, parseStorePathBase, type StorePathBase } from '../../nix/store-path.js';
import type { Limits } from '../../config.js';
import type { AppEnv } from '../context.js';
import { checkDeclaredLength, readJson, readSmallBody } from '../body.js';
import { parseBody } from '../validate.js';
import { authRoutes } from './auth.js';
import type { ExchangeService } from '../../identity/exchange.js';
import { type StorageDeps, storageRoutes } from './storage.js';
import { sourceRoutes } from './sources.js';
import type { SourceService } from '../../cache/sources.js';
import type { OrgKeyService } from '../../org/keys.js';
import { noSliceNamed, sliceNamesKnownTo } from '../../org/names.js';
import { NotFoundWithReason } from '../../errors.js';
import type { Principal } from '../../identity/principal.js';
import type { Metrics } from '../metrics.js';
import { FloeError } from '../../errors.js';
import {
  BATCH_MAX_BODY_BYTES,
  BATCH_MAX_ENTRIES,
  BATCH_MAX_NAR_BYTES,
  type PushedBatchEntry,
  type PushedBatchResult,
  type PushedPath,
  type PushedPathResult,
  missingRequest,
  pushedPath,
} from '../../wire/push.js';
import type { PathMetadata } from '../../cache/committing.js';
import { errorBody } from '../errors.js';
import { type MintedTokenAnswer, createTokenRequest } from '../../wire/tokens.js';

export interface ApiDeps {
  exchange: ExchangeService;
  orgs: OrgService;
  tokens: TokenService;
  authorizer: Authorizer;
  cache: CacheService;
  limits: Limits;
  publicUrl: () => string;
  sources: SourceService;
  orgKeys: OrgKeyService;
  storage: Omit<StorageDeps, 'admin' | 'guards' | 'limits'>;
  /** Every administrative change: authorize → act → audit. */
  admin: AdminServices;
  metrics: Metrics;
  audit: AuditLog;
  policies: PolicyStore;
  signers: SignerService;
}

/** A store path given as `/nix/store/<base>` or `<base>`. */
function storePathArg(text: string): StorePathBase {
  return text.startsWith('/') ? parseStorePath(text) : parseStorePathBase(text);
}

const createOrgBody = z.object({ name: z.string() });
const createSliceBody = z.object({ name: z.string(), public: z.boolean().optional(), inView: z.boolean().optional() });
const updateSliceBody = z
  .object({
    public: z.boolean().optional(),
    inView: z.boolean().optional(),
    priority: z.number().int().min(0).max(1_000_000).optional(),
  })
  .refine((b) => b.public !== undefined || b.inView !== undefined || b.priority !== undefined, {
    message: 'give public, inView or priority',
  });
/** Splits a `<JSON line>\n<NAR bytes>` body without buffering the NAR. */
async function splitFirstLine(
  req: IncomingMessage,
  maxLine: number,
): Promise<{ line: string; rest: AsyncIterable<Buffer> }> {
  const it = (req as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  let buf = Buffer.alloc(0);
  for (;;) {
    const nl = buf.indexOf(0x0a);
    if (nl >= 0) {
      const line = buf.subarray(0, nl).toString('utf8');
      const tail = buf.subarray(nl + 1);
      async function* rest() {
        if (tail.length) yield tail;
        for (;;) {
          const r = await it.next();
          if (r.done) return;
          yield r.value as Buffer;
        }
      }
      return { line, rest: rest() };
    }
    if (buf.length > maxLine) throw new TooLarge(`path info line longer than ${maxLine} bytes`);
    const r = await it.next();
    if (r.done) throw new InvalidInput('body', 'expected a JSON line, a newline, then the NAR');
    buf = Buffer.concat([buf, r.value as Buffer]);
  }
}

/** The metadata of a pushed path as the committer takes it (its NarHash must be SHA-256). */
function pathMetadata(info: PushedPath): PathMetadata {
  const narHash = parseHash(info.narHash, 'narHash');
  if (narHash.algo !== 'sha256') throw new InvalidInput('narHash', 'must be sha256');
  return {
    storePath: storePathArg(info.storePath),
    narHash,
    narSize: info.narSize,
    references: info.references.map(storePathArg),
    ...(info.deriver ? { deriver: storePathArg(info.deriver) } : {}),
    ...(info.ca ? { ca: info.ca } : {}),
    sigs: info.sigs ?? [],
    ...(info.fields?.length ? { extraFields: info.fields } : {}),
  };
}

/**
 * The entries of a `POST …/paths/batch` body, held whole: each a JSON line (as the first line of
 * `PUT …/paths`) and then exactly its narSize bytes of uncompressed NAR. Strict: at most
 * BATCH_MAX_ENTRIES, each NAR at most BATCH_MAX_NAR_BYTES, nothing after the last NAR. A body that
 * breaks any of that is refused whole, naming the entry, before any entry is looked at further.
 */
export function parseBatchBody(
  body: Buffer,
  maxLine: number,
): Array<{ info: PushedPath; meta: PathMetadata; nar: Buffer }> {
  const entries: Array<{ info: PushedPath; meta: PathMetadata; nar: Buffer }> = [];
  let at = 0;
  while (at < body.length) {
    const n = entries.length;
    if (n >= BATCH_MAX_ENTRIES) throw new TooLarge(`a batch holds at most ${BATCH_MAX_ENTRIES} paths`);
    const what = `entry ${n}`;
    const nl = body.indexOf(0x0a, at);
    if ((nl < 0 ? body.length : nl) - at > maxLine)
      throw new TooLarge(`${what}: path info line longer than ${maxLine} bytes`);
    if (nl < 0) throw new InvalidInput(what, 'truncated: expected a JSON line and a newline');
    let json: unknown;
    try {
      json = JSON.parse(body.subarray(at, nl).toString('utf8'));
    } catch {
      throw new InvalidInput(what, 'the path info line must be a JSON object');
    }
    let info: PushedPath;
    let meta: PathMetadata;
    try {
      info = parseBody(pushedPath, json);
      meta = pathMetadata(info);
    } catch (err) {
      if (err instanceof FloeError) throw new InvalidInput(what, err.message);
      throw err;
    }
    if (info.narSize > BATCH_MAX_NAR_BYTES)
      throw new TooLarge(
        `${what}: a batched NAR is at most ${BATCH_MAX_NAR_BYTES} bytes (upload ${info.storePath} alone)`,
      );
    const end = nl + 1 + info.narSize;
    if (end > body.length)
      throw new InvalidInput(what, `truncated: ${body.length - nl - 1} of the declared ${info.narSize} NAR bytes`);
    entries.push({ info, meta, nar: body.subarray(nl + 1, end) });
    at = end;
  }
  if (entries.length === 0) throw new InvalidInput('body', 'a batch holds at least one path');
  return entries;
}

export function apiRoutes(deps: ApiDeps): Hono<AppEnv> {
  const api = new Hono<AppEnv>();
  const { orgAdmin, serverAdmin, signedIn } = routeGuards(deps.admin.guard);
  const guards = { orgAdmin, serverAdmin };

  // The write target, decided once, before the body: the org's default (or the token's only)
  // slice on the unified URL; on a slice URL that slice, or the same 404 as for a missing slice
  // when the caller may neither read nor write it.
  const writeTarget = async (c: import('hono').Context<AppEnv>): Promise<WriteTarget> => {
    const p = c.get('principal');
    const org = c.req.param('org');
    const slice = c.req.param('slice');
    if (org === undefined || slice === undefined) return deps.cache.uploads.writeTarget(p, { kind: 'unified' });
    try {
      return await deps.cache.uploads.writeTargetAt(p, await deps.orgs.findSlice(org, slice));
    } catch (err) {
      throw err instanceof NotFound ? await sliceMiss(p, org, slice, err) : err;
    }
  };

  // A slice the caller may neither read nor write does not exist for it; the org's own members hear
  // which slice is missing, with a hint among the slices they may use. Everyone else: the plain miss.
  const sliceMiss = async (p: Principal, orgName: string, slice: string, plain: NotFound): Promise<Error> => {
    const o = await deps.orgs.findOrg(orgName);
    const all = o ? await deps.orgs.listSlices(o) : [];
    const known =
      o &&
      sliceNamesKnownTo(
        p,
        o.id,
        all.map((x) => x.name),
      );
    if (!o || !known) return plain;
    const org = { id: o.id, name: o.name };
    const usable = all.filter(
      (x) => known.includes(x.name) && deps.cache.mayUseSlice(p, { type: 'slice', org, slice: x }),
    );
    return new NotFoundWithReason(
      noSliceNamed(
        o.name,
        [slice],
        usable.map((x) => x.name),
      ),
    );
  };

  authRoutes(api, {
    exchange: deps.exchange,
    tokens: deps.tokens,
    access: deps.admin.access,
    limits: deps.limits,
    publicUrl: deps.publicUrl,
    guards,
    audit: deps.audit,
  });
  policyRoutes(api, {
    policies: deps.policies,
    signers: deps.signers,
    governance: deps.admin.governance,
    audit: deps.audit,
    orgs: deps.orgs,
    limits: deps.limits,
    guards,
  });
  storageRoutes(api, { ...deps.storage, admin: deps.admin.storage, limits: deps.limits, guards });
  sourceRoutes(api, {
    sources: deps.sources,
    keys: deps.orgKeys,
    admin: deps.admin.orgs,
    limits: deps.limits,
    guards,
    findOrg: (name) => deps.orgs.findOrg(name),
  });

  api.post('/orgs', serverAdmin('creating orgs'), async (c) => {
    const body = parseBody(createOrgBody, await readJson(c.env.incoming, deps.limits.maxSmallBodyBytes));
    const org = await deps.admin.orgs.createOrg(c.get('principal'), body.name);
    return c.json({ name: org.name, id: org.id, slices: ['default'] }, 201);
  });

  api.get('/orgs/:org', orgAdmin(), async (c) => {
    const org = adminOrg(c);
    const slices = await deps.orgs.listSlices(org);
    return c.json({
      name: org.name,
      id: org.id,
      createdAt: org.createdAt,
      slices: slices.map((s) => ({ name: s.name, public: s.public })),
    });
  });

  api.post('/orgs/:org/slices', orgAdmin(), async (c) => {
    const org = adminOrg(c);
    const body = parseBody(createSliceBody, await readJson(c.env.incoming, deps.limits.maxSmallBodyBytes));
    const inView = body.inView ?? false;
    const slice = await deps.admin.orgs.createSlice(c.get('principal'), org, {
      name: body.name,
      public: body.public ?? false,
      inView,
    });
    return c.json(
      {
        org: org.name,
        name: slice.name,
        public: slice.public,
        inView,
        url: `${deps.publicUrl()}/cache/${org.name}/${slice.name}`,
      },
      201,
    );
  });

  api.patch('/orgs/:org/slices/:slice', orgAdmin('slice'), async (c) => {
    const org = adminOrg(c);
    const name = c.req.param('slice');
    const body = parseBody(updateSliceBody, await readJson(c.env.incoming, deps.limits.maxSmallBodyBytes));
    await deps.admin.orgs.updateSlice(c.get('principal'), org, name, body);
    const settings = (await deps.sources.sliceSettings(org)).find((x) => x.name === name);
    if (!settings) throw await deps.admin.guard.noSuchSlice(c.get('principal'), org, [name]);
    return c.json({ org: org.name, ...settings });
  });

  api.delete('/orgs/:org/slices/:slice', orgAdmin('slice'), async (c) => {
    const org = adminOrg(c);
    const name = c.req.param('slice');
    const result = await deps.admin.orgs.deleteSlice(c.get('principal'), org, name, c.req.query('force') === '1');
    // 202: a huge slice, emptied in part (committed); the caller asks again to go on.
    return c.json({ org: org.name, name, ...result }, result.deleted ? 200 : 202);
  });

  // The org is in the body: the anonymous is refused before it is read, the rest by the service.
  api.post('/tokens', signedIn('creating tokens needs an org admin token'), async (c) => {
    const body = parseBody(createTokenRequest, await readJson(c.env.incoming, deps.limits.maxSmallBodyBytes));
    const t = await deps.admin.access.mintOrgToken(c.get('principal'), {
      org: body.org,
      scopes: body.scopes,
      slices: body.slices ?? null,
      ...(body.ttl !== undefined ? { ttlSeconds: parseTtl(body.ttl) } : {}),
      defaultTtlSeconds: parseTtl('24h'),
      ...(body.subject !== undefined ? { subject: body.subject } : {}),
      ...(body.description ? { description: body.description } : {}),
      ...(body.deploy ? { deploy: body.deploy } : {}),
      ...(body.cidrs ? { cidrs: body.cidrs } : {}),
      ...(body.countries ? { countries: body.countries } : {}),
    });
    return c.json(
      {
        token: t.token,
        id: t.id,
        org: t.org.name,
        scopes: t.scopes,
        slices: t.slices,
        ...(t.deploy ? { deploy: t.deploy } : {}),
        ...(t.network ? { network: t.network } : {}),
        expiresAt: t.expiresAt.toISOString(),
      } satisfies MintedTokenAnswer,
      201,
    );
  });

  api.delete('/tokens/:id', async (c) => {
    const id = c.req.param('id');
    await deps.admin.access.revokeToken(c.get('principal'), id);
    return c.json({ id, revoked: true });
  });

  // What a client puts in nix.conf: the substituter and exactly the keys of the caller's view
  // (or of one org, `?org=`, e.g. to follow a public slice from a machine without a token).
  api.get('/cache/info', async (c) => {
    const url = `${deps.publicUrl()}/cache`;
    const org = c.req.query('org');
    const keys =
      org !== undefined ? await deps.cache.orgPublicKeys(org) : await deps.cache.publicKeysFor(c.get('principal'));
    if (keys === undefined) throw new NotFound();
    return c.json({
      substituter: url,
      publicKey: keys.join(' '),
      publicKeys: keys,
      nixConf: `extra-substituters = ${url}\n${keys.length ? `extra-trusted-public-keys = ${keys.join(' ')}\n` : "# no trusted keys: this caller's view holds no slice (log in first)\n"}`,
    });
  });

  const missing = async (c: import('hono').Context<AppEnv>) => {
    const target = await writeTarget(c); // refuse before reading the body
    const body = parseBody(missingRequest, await readJson(c.env.incoming, 16 * deps.limits.maxSmallBodyBytes));
    if (body.paths.length > deps.limits.maxBatchPaths)
      throw new InvalidInput('paths', `at most ${deps.limits.maxBatchPaths} per request`);
    const paths = body.paths.map(storePathArg);
    const plan = await deps.cache.uploads.missingPaths(c.get('principal'), target, paths);
    return c.json({
      missing: plan.missing.map((x) => `/nix/store/${x}`),
      mirrored: plan.mirrored.map((x) => `/nix/store/${x}`),
      refused: plan.refused.map((r) => ({ path: `/nix/store/${r.path}`, reason: r.reason })),
    });
  };
  api.post('/cache/missing', missing);
  api.post('/cache/:org/:slice/missing', missing);

  const upload = async (c: import('hono').Context<AppEnv>) => {
    const p = c.get('principal');
    // The slice-level write is decided here, once, before the body; the path itself at its commit.
    const target = await writeTarget(c);
    const req = c.env.incoming;
    const { line, rest } = await splitFirstLine(req, 4 * deps.limits.maxSmallBodyBytes);
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      throw new InvalidInput('path info', 'first line must be a JSON object');
    }
    const info = parseBody(pushedPath, json);
    const controller = new AbortController();
    req.once('close', () => {
      if (!req.complete) controller.abort();
    });
    const declared = compressionFromName(String(c.req.header('x-floe-compression') ?? ''));
    const { result, nar } = await deps.cache.uploads
      .uploadPath(p, target, pathMetadata(info), rest, declared, controller.signal)
      .catch((err: unknown) => {
        // The body watchdog answered 408 and closed the connection: a client matter, logged as one.
        if (c.env.outgoing.writableEnded && !(err instanceof FloeError))
          throw new InvalidInput('body', 'stalled; answered 408 already');
        // Counted like `PUT nar/` uploads: `floe push` sends everything this way.
        deps.metrics.uploadRejected(err);
        throw err;
      });
    deps.metrics.uploadAccepted(nar.receivedBytes);
    const answer: PushedPathResult = {
      storePath: info.storePath,
      status: result,
      narHash: formatNix32Hash(nar.narHash),
      narSize: nar.narSize,
      receivedBytes: nar.receivedBytes,
    };
    return c.json(answer, result === 'created' ? 201 : 200);
  };
  api.put('/cache/paths', upload);
  api.put('/cache/:org/:slice/paths', upload);

  // Several small paths in one request; each entry is verified and committed as `upload` does it.
  const uploadBatch = async (c: import('hono').Context<AppEnv>) => {
    const p = c.get('principal');
    const target = await writeTarget(c); // refuse before reading the body
    const req = c.env.incoming;
    const limit = Math.min(deps.limits.maxUploadBytes, BATCH_MAX_BODY_BYTES);
    // A body declaring too much is refused before it waits for a slot.
    checkDeclaredLength(req, limit);
    const controller = new AbortController();
    req.once('close', () => {
      if (!req.complete) controller.abort();
    });
    const { entries, results } = await deps.cache.uploads.inBatchSlot(p, target, async () => {
      const entries = parseBatchBody(await readSmallBody(req, limit), 4 * deps.limits.maxSmallBodyBytes);
      const metas = entries.map((e) => ({ meta: e.meta, nar: e.nar }));
      return { entries, results: await deps.cache.uploads.uploadPaths(p, target, metas, controller.signal) };
    });
    const requestId = c.get('requestId');
    const answer: PushedBatchResult = {
      results: results.map((r, i): PushedBatchEntry => {
        const storePath = entries[i]!.info.storePath;
        if ('refused' in r) {
          deps.metrics.uploadRejected(r.refused);
          const body = errorBody(r.refused, requestId);
          return { storePath, status: 'refused', httpStatus: body.status, code: body.code, message: body.message };
        }
        deps.metrics.uploadAccepted(r.nar.receivedBytes);
        return {
          storePath,
          status: r.result,
          narHash: formatNix32Hash(r.nar.narHash),
          narSize: r.nar.narSize,
          receivedBytes: r.nar.receivedBytes,
        };
      }),
    };
    return c.json(answer, 200);
  };
  api.post('/cache/paths/batch', uploadBatch);
  api.post('/cache/:org/:slice/paths/batch', uploadBatch);

  return api;
}
