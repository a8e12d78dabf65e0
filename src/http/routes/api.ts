/** Floe's own JSON API (`/api/v1`): orgs, slices, tokens, and batch cache operations for the CLI. */
import type { AuditLog } from '../../audit/log.js';
import type { PolicyStore } from '../../org/policies.js';
import type { SignerService } from '../../cache/signers.js';
import { cidrWithin, isValidCidr } from '../../policy/network.js';
import { parseDeployGrant } from '../../registry/deploy.js';
import { policyRoutes } from './policy.js';
import type { IncomingMessage } from 'node:http';
import { Hono } from 'hono';
import { z } from 'zod';
import { Forbidden, InvalidInput, NotFound, TooLarge, Unauthenticated } from '../../errors.js';
import type { Principal, Scope } from '../../identity/principal.js';
import { boundByCreator, parseTtl, type TokenService } from '../../identity/tokens.js';
import { ttlWithinCreator } from '../../identity/lifetime.js';
import type { Authorizer } from '../../policy/authorize.js';
import type { Action, OrgResource } from '../../policy/actions.js';
import { type Org, type OrgService, parseName } from '../../org/service.js';
import type { CacheService, CacheView } from '../../cache/service.js';
import { compressionFromName } from '../../cache/compression.js';
import { formatNix32Hash, parseHash } from '../../nix/hash.js';
import { parseStorePath, parseStorePathBase, type StorePathBase } from '../../nix/store-path.js';
import type { Limits } from '../../config.js';
import type { AppEnv } from '../context.js';
import { readJson } from '../body.js';
import { parseBody } from '../validate.js';
import { authRoutes } from './auth.js';
import type { ExchangeService } from '../../identity/exchange.js';
import { type StorageDeps, storageRoutes } from './storage.js';
import { sourceRoutes } from './sources.js';
import type { SourceService } from '../../cache/sources.js';
import type { OrgKeyService } from '../../org/keys.js';
import { closestName } from '../../org/names.js';
import { NotFoundWithReason } from '../../registry/service.js';
import type { Metrics } from '../metrics.js';
import { FloeError } from '../../errors.js';
import { type PushedPathResult, missingRequest, pushedPath } from '../../wire/push.js';
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
  storage: Omit<StorageDeps, 'requireOrg' | 'requireServerAdmin' | 'limits' | 'audit'>;
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

export function apiRoutes(deps: ApiDeps): Hono<AppEnv> {
  const api = new Hono<AppEnv>();

  /**
   * The org, if the caller may `action` it. `slices`: the administration concerns only these slices
   * of the org (without it, it is org-wide, which a slice-limited admin token may not do: the
   * guardrails decide).
   */
  const requireOrg = async (
    p: Principal,
    orgName: string,
    action: Action,
    slices?: readonly string[],
  ): Promise<Org> => {
    const org = await deps.orgs.findOrg(orgName);
    const resource: OrgResource | undefined = org && { type: 'org', org: { id: org.id, name: org.name } };
    // A hint names only what the caller knows exists: its own token's org (anyone), or any org (the server admin).
    const ownOrgHint = () => {
      const mine = p.kind === 'token' ? closestName(orgName, [p.org.name]) : undefined;
      return mine ? ` (did you mean ${JSON.stringify(mine)}, your token's org?)` : '';
    };
    if (!org || !resource) {
      if (p.kind === 'server-admin') {
        const near = closestName(orgName, await deps.orgs.orgNames());
        throw new NotFoundWithReason(
          `no org named ${JSON.stringify(orgName)}${near ? ` (did you mean ${JSON.stringify(near)}?)` : ''}`,
        );
      }
      throw new Forbidden(`not allowed to manage org ${JSON.stringify(orgName)}${ownOrgHint()}`);
    }
    const d = deps.authorizer.authorize(p, action, resource, slices ? { adminSlices: slices } : {});
    if (!d.allowed) {
      // One message for "no such org" and "not yours"; the reason only for the org's own tokens.
      const own = p.kind === 'token' && p.org.id === org.id;
      throw new Forbidden(
        `not allowed to manage org ${JSON.stringify(orgName)}${own ? `: ${d.reason}` : ownOrgHint()}`,
      );
    }
    return org;
  };

  const requireServerAdmin = (p: Principal, what: string): void => {
    const d = deps.authorizer.authorize(p, 'server.admin', { type: 'server' });
    if (!d.allowed) throw new Forbidden(`${what} needs the server admin token: ${d.reason}`);
  };

  // One answer for "no such slice" and "not yours": a slice the caller may neither read nor write does not exist for it.
  const sliceView = async (p: Principal, org: string | undefined, slice: string | undefined): Promise<CacheView> => {
    if (org === undefined || slice === undefined) return { kind: 'unified' };
    const s = await deps.orgs.findSlice(org, slice);
    if (!s || !deps.cache.mayUseSlice(p, s)) throw new NotFound();
    return { kind: 'slice', slice: s };
  };

  authRoutes(api, {
    exchange: deps.exchange,
    tokens: deps.tokens,
    limits: deps.limits,
    publicUrl: deps.publicUrl,
    requireOrg,
    requireServerAdmin,
    audit: deps.audit,
  });
  policyRoutes(api, {
    policies: deps.policies,
    signers: deps.signers,
    audit: deps.audit,
    orgs: deps.orgs,
    limits: deps.limits,
    requireOrg,
    requireServerAdmin,
  });
  storageRoutes(api, { ...deps.storage, limits: deps.limits, requireOrg, requireServerAdmin, audit: deps.audit });
  sourceRoutes(api, {
    sources: deps.sources,
    keys: deps.orgKeys,
    cache: deps.cache,
    limits: deps.limits,
    audit: deps.audit,
    requireOrg,
    requireServerAdmin,
    findOrg: (name) => deps.orgs.findOrg(name),
    findSlice: (org, slice) => deps.orgs.findSlice(org, slice),
    mayRead: (p, slice) => deps.authorizer.authorize(p, 'cache.read', slice, {}, { quiet: true }).allowed,
  });

  api.post('/orgs', async (c) => {
    requireServerAdmin(c.get('principal'), 'creating orgs');
    const body = parseBody(createOrgBody, await readJson(c.env.incoming, deps.limits.maxSmallBodyBytes));
    const org = await deps.orgs.createOrg(body.name);
    await deps.audit.appendNow({
      principal: c.get('principal'),
      action: 'org.create',
      target: `org ${org.name}`,
      orgId: org.id,
    });
    return c.json({ name: org.name, id: org.id, slices: ['default'] }, 201);
  });

  api.get('/orgs/:org', async (c) => {
    const org = await requireOrg(c.get('principal'), c.req.param('org'), 'org.admin');
    const slices = await deps.orgs.listSlices(org);
    return c.json({
      name: org.name,
      id: org.id,
      createdAt: org.createdAt,
      slices: slices.map((s) => ({ name: s.name, public: s.public })),
    });
  });

  api.post('/orgs/:org/slices', async (c) => {
    const org = await requireOrg(c.get('principal'), c.req.param('org'), 'org.admin');
    const body = parseBody(createSliceBody, await readJson(c.env.incoming, deps.limits.maxSmallBodyBytes));
    const slice = await deps.orgs.createSlice(org, body.name, body.public ?? false, body.inView ?? false);
    await deps.audit.appendNow({
      principal: c.get('principal'),
      action: 'slice.create',
      target: `slice ${org.name}/${slice.name}`,
      orgId: org.id,
      detail: { public: slice.public, inView: body.inView ?? false },
    });
    return c.json(
      {
        org: org.name,
        name: slice.name,
        public: slice.public,
        inView: body.inView ?? false,
        url: `${deps.publicUrl()}/cache/${org.name}/${slice.name}`,
      },
      201,
    );
  });

  api.patch('/orgs/:org/slices/:slice', async (c) => {
    const name = c.req.param('slice');
    const org = await requireOrg(c.get('principal'), c.req.param('org'), 'org.admin', [name]);
    const body = parseBody(updateSliceBody, await readJson(c.env.incoming, deps.limits.maxSmallBodyBytes));
    if (body.public !== undefined && !(await deps.orgs.setSliceVisibility(org, name, body.public)))
      throw new NotFound();
    if (body.inView !== undefined || body.priority !== undefined) {
      await deps.sources.setSliceView(org, name, {
        ...(body.inView !== undefined ? { inView: body.inView } : {}),
        ...(body.priority !== undefined ? { priority: body.priority } : {}),
      });
    }
    await deps.audit.appendNow({
      principal: c.get('principal'),
      action: 'slice.update',
      target: `slice ${org.name}/${name}`,
      orgId: org.id,
      detail: body,
    });
    const settings = (await deps.sources.sliceSettings(org)).find((x) => x.name === name);
    if (!settings) throw new NotFound();
    return c.json({ org: org.name, ...settings });
  });

  api.delete('/orgs/:org/slices/:slice', async (c) => {
    const name = c.req.param('slice');
    // Administration of this one slice: a token limited to other slices is refused by the guardrails.
    const org = await requireOrg(c.get('principal'), c.req.param('org'), 'org.admin', [name]);
    const force = c.req.query('force') === '1';
    // --force: the slice's paths go first (GC collects their blobs); a path landing meanwhile makes the delete a 409.
    if (force) await deps.orgs.checkDeletable(org, name);
    const slice = force ? await deps.orgs.findSlice(org.name, name) : undefined;
    const paths = slice ? await deps.cache.emptySlice(slice.slice.id) : 0;
    const removed = await deps.orgs.deleteSlice(org, name);
    await deps.sources.sliceDeleted(org.id);
    const detail = { ...removed, ...(force ? { force: true, paths } : {}) };
    await deps.audit.appendNow({
      principal: c.get('principal'),
      action: 'slice.delete',
      target: `slice ${org.name}/${name}`,
      orgId: org.id,
      detail,
    });
    return c.json({ org: org.name, name, deleted: true, paths, ...removed });
  });

  api.post('/tokens', async (c) => {
    const p = c.get('principal');
    // The org is in the body; refuse the anonymous before reading it.
    if (p.kind === 'anonymous') throw new Unauthenticated('creating tokens needs an org admin token');
    const body = parseBody(createTokenRequest, await readJson(c.env.incoming, deps.limits.maxSmallBodyBytes));
    const slices = body.slices ? body.slices.map((s) => parseName('slice', s)) : null;
    // A token limited to slices administers those slices: it mints tokens limited to them, never
    // an unlimited or deploy-only one (a deploy token reads closures in every slice).
    const org = await requireOrg(p, body.org, 'org.admin', slices && !body.deploy ? slices : undefined);
    if (slices) {
      const known = new Set((await deps.orgs.listSlices(org)).map((s) => s.name));
      const unknown = slices.filter((s) => !known.has(s));
      if (unknown.length) throw new InvalidInput('slices', `no such slice in ${org.name}: ${unknown.join(', ')}`);
    }
    // Never longer-lived than the caller's own token (the server admin excepted).
    const ttlSeconds = ttlWithinCreator(
      p,
      body.ttl !== undefined ? parseTtl(body.ttl) : undefined,
      parseTtl('24h'),
      Math.floor(Date.now() / 1000),
    );
    const deploy = body.deploy?.map((g) => parseDeployGrant(g, org.name));
    // A default subject that says who minted the token and what for, so logs and lists tell tokens apart.
    const purpose = deploy ? 'deploy' : [...new Set(body.scopes)].join('+') + (slices ? ` on ${slices.join(',')}` : '');
    const subject = body.subject ?? `created-by:${p.subject} for ${purpose}`;
    if (deploy?.some((g) => g.org !== org.name))
      throw new InvalidInput('deploy', `a device token of ${org.name} can only name ${org.name}'s flakes`);
    // Deploy-only tokens read, nothing else, whatever scopes were asked for.
    const scopes = deploy ? (['read'] as Scope[]) : ([...new Set(body.scopes)] as Scope[]);
    const bad = (body.cidrs ?? []).filter((cidr) => !isValidCidr(cidr));
    if (bad.length) throw new InvalidInput('cidrs', `not an address or CIDR: ${bad.join(', ')}`);
    // Never wider than the caller's own token.
    const network = boundByCreator(
      p,
      {
        ...(body.cidrs || body.countries
          ? { network: { cidrs: body.cidrs ?? [], countries: (body.countries ?? []).map((x) => x.toUpperCase()) } }
          : {}),
      },
      cidrWithin,
    );
    const minted = await deps.tokens.mint({
      subject,
      ttlSeconds,
      ...(body.description
        ? { description: body.description }
        : deploy
          ? { description: `deploy-only: ${body.deploy!.join(', ')}` }
          : {}),
      grant: {
        org: { id: org.id, name: org.name },
        scopes,
        slices: deploy ? null : slices,
        ...(deploy ? { deploy } : {}),
        ...(network ? { network } : {}),
      },
    });
    await deps.audit.appendNow({
      principal: p,
      action: 'token.create',
      target: `token ${minted.id}`,
      orgId: org.id,
      detail: {
        subject,
        scopes,
        slices,
        expiresAt: minted.expiresAt.toISOString(),
        ...(deploy ? { deploy: body.deploy } : {}),
        ...(network ? { network } : {}),
      },
    });
    return c.json(
      {
        token: minted.token,
        id: minted.id,
        org: org.name,
        scopes,
        slices: deploy ? null : slices,
        ...(deploy ? { deploy: body.deploy } : {}),
        ...(network ? { network } : {}),
        expiresAt: minted.expiresAt.toISOString(),
      } satisfies MintedTokenAnswer,
      201,
    );
  });

  api.delete('/tokens/:id', async (c) => {
    const p = c.get('principal');
    const id = c.req.param('id');
    const row = await deps.tokens.describe(id);
    if (!row) throw new NotFound();
    if (p.kind !== 'server-admin') {
      const org = row.org_id && p.kind === 'token' && p.org.id === row.org_id ? p.org : undefined;
      // A slice-limited admin revokes only tokens limited to its slices.
      const slices = row.slices ? (JSON.parse(row.slices) as string[]) : undefined;
      const d = org
        ? deps.authorizer.authorize(p, 'org.admin', { type: 'org', org }, slices ? { adminSlices: slices } : {})
        : { allowed: false, reason: 'not your org' };
      if (!d.allowed) throw new Forbidden(`not allowed to revoke this token: ${d.reason}`);
    }
    await deps.tokens.revoke(id);
    await deps.audit.appendNow({
      principal: p,
      action: 'token.revoke',
      target: `token ${id}`,
      orgId: row.org_id,
      detail: { subject: row.subject },
    });
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

  const missing = async (c: import('hono').Context<AppEnv>, view: CacheView) => {
    const target = await deps.cache.uploads.writeTarget(c.get('principal'), view); // refuse before reading the body
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
  api.post('/cache/missing', (c) => missing(c, { kind: 'unified' }));
  api.post('/cache/:org/:slice/missing', async (c) =>
    missing(c, await sliceView(c.get('principal'), c.req.param('org'), c.req.param('slice'))),
  );

  const upload = async (c: import('hono').Context<AppEnv>, view: CacheView) => {
    const p = c.get('principal');
    // The slice-level write is decided here, once, before the body; the path itself at its commit.
    const target = await deps.cache.uploads.writeTarget(p, view);
    const req = c.env.incoming;
    const { line, rest } = await splitFirstLine(req, 4 * deps.limits.maxSmallBodyBytes);
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      throw new InvalidInput('path info', 'first line must be a JSON object');
    }
    const info = parseBody(pushedPath, json);
    const narHash = parseHash(info.narHash, 'narHash');
    if (narHash.algo !== 'sha256') throw new InvalidInput('narHash', 'must be sha256');
    const controller = new AbortController();
    req.once('close', () => {
      if (!req.complete) controller.abort();
    });
    const declared = compressionFromName(String(c.req.header('x-floe-compression') ?? ''));
    const { result, nar } = await deps.cache.uploads
      .uploadPath(
        p,
        target,
        {
          storePath: storePathArg(info.storePath),
          narHash,
          narSize: info.narSize,
          references: info.references.map(storePathArg),
          ...(info.deriver ? { deriver: storePathArg(info.deriver) } : {}),
          ...(info.ca ? { ca: info.ca } : {}),
          sigs: info.sigs ?? [],
          ...(info.fields?.length ? { extraFields: info.fields } : {}),
        },
        rest,
        declared,
        controller.signal,
      )
      .catch((err: unknown) => {
        // The body watchdog answered 408 and closed the connection: a client matter, logged as one.
        if (c.env.outgoing.writableEnded && !(err instanceof FloeError))
          throw new InvalidInput('body', 'stalled; answered 408 already');
        // Counted like `PUT nar/` uploads: `floe push` sends everything this way.
        deps.metrics.inc('floe_uploads_total', { result: 'rejected' });
        if (err instanceof FloeError && err.code !== 'unauthenticated' && err.code !== 'forbidden')
          deps.metrics.uploadVerificationFailed(err.code);
        throw err;
      });
    deps.metrics.inc('floe_uploads_total', { result: 'accepted' });
    deps.metrics.inc('floe_upload_bytes_total', {}, nar.receivedBytes);
    const answer: PushedPathResult = {
      storePath: info.storePath,
      status: result,
      narHash: formatNix32Hash(nar.narHash),
      narSize: nar.narSize,
      receivedBytes: nar.receivedBytes,
    };
    return c.json(answer, result === 'created' ? 201 : 200);
  };
  api.put('/cache/paths', (c) => upload(c, { kind: 'unified' }));
  api.put('/cache/:org/:slice/paths', async (c) =>
    upload(c, await sliceView(c.get('principal'), c.req.param('org'), c.req.param('slice'))),
  );

  return api;
}
