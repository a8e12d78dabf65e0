/**
 * FlakeHub's API as `fh` calls it (search, list, resolve, apply, status) over the registry
 * service, so every answer is decided by the same authorizer as Floe's own /api/v1/flakes.
 * `/f/...` also serves Nix's tarballs: these handlers answer only the shapes fh asks for (JSON
 * Accept, `/releases`, `/output/`) and hand everything else on. Contract: docs/compat/fh.md.
 */
import type { Context, Hono, Next } from 'hono';
import { Forbidden, NotFound, Unauthenticated, InvalidInput } from '../../../errors.js';
import type { RegistryService } from '../../../registry/service.js';
import type { TokenService } from '../../../identity/tokens.js';
import type { AuditLog } from '../../../audit/log.js';
import type { Principal } from '../../../identity/principal.js';
import { ttlWithinCreator } from '../../../identity/lifetime.js';
import { parseRequirement, satisfies } from '../../../registry/version.js';
import type { AppEnv } from '../../context.js';
import { pinnedUrl } from '../../../registry/urls.js';
import {
  cliStatusOf,
  decodeOnceMore,
  flakeOf,
  projectOf,
  releaseObjectOf,
  releaseRowOf,
  searchResultOf,
  simplifiedVersion,
  versionOf,
  wantsJson,
} from './fh-mapping.js';

export interface FhDeps {
  registry: RegistryService;
  tokens: TokenService;
  audit: AuditLog;
  publicUrl: () => string;
}

/** fh apply's scoped token: long enough for one `nix copy`, never past the caller's own token. */
const SCOPED_TOKEN_TTL_SECONDS = 3600;
const LIST_LIMIT = 500;

export function fhRoutes(app: Hono<AppEnv>, deps: FhDeps): void {
  const base = () => deps.publicUrl();
  const list = (p: Principal, opts: { query?: string; org?: string } = {}) =>
    deps.registry.listFlakes(p, { ...opts, limit: LIST_LIMIT });

  app.get('/search', async (c) => {
    const q = c.req.query('q') ?? '';
    if (q.length > 200) throw new InvalidInput('q', 'at most 200 characters');
    return c.json((await list(c.get('principal'), { query: q })).map(searchResultOf));
  });
  app.get('/flakes', async (c) => c.json((await list(c.get('principal'))).map(flakeOf)));
  app.get('/label/:label', async (c) => {
    const label = c.req.param('label');
    return c.json((await list(c.get('principal'))).filter((f) => f.labels.includes(label)).map(flakeOf));
  });
  app.get('/orgs', async (c) => {
    const p = c.get('principal');
    const names = new Set((await list(p)).map((f) => f.org));
    if (p.kind === 'token') names.add(p.org.name);
    return c.json([...names].sort().map((name) => ({ name })));
  });
  app.get('/orgs/:org/projects', async (c) =>
    c.json((await list(c.get('principal'), { org: c.req.param('org') })).map(projectOf)),
  );

  app.get('/f/:org/:flake/releases', async (c) => {
    const details = await deps.registry.details(c.get('principal'), c.req.param('org'), c.req.param('flake'));
    if (!details) throw new NotFound();
    return c.json(details.releases.map((r) => releaseRowOf(r, details.updatedAt)));
  });

  app.get('/version/resolve/:org/:flake/:req', async (c) => {
    const requirement = parseRequirement(decodeOnceMore(c.req.param('req')));
    const all = await deps.registry.releases(c.get('principal'), c.req.param('org'), c.req.param('flake'));
    if (!all) throw new NotFound();
    return c.json(all.filter((r) => !r.yanked && satisfies(r.version, requirement)).map(versionOf));
  });

  app.get('/version/:org/:flake/:req', async (c) => {
    const p = c.get('principal');
    const [org, flake] = [c.req.param('org'), c.req.param('flake')];
    const release = await deps.registry.resolve(p, org, flake, c.req.param('req'));
    const details = release && (await deps.registry.releaseDetails(release));
    if (!release || !details) throw new NotFound();
    const exact = encodeURIComponent(`=${simplifiedVersion(release.version.text)}`);
    const pretty = `${base()}/f/${encodeURIComponent(org)}/${encodeURIComponent(flake)}/${exact}.tar.gz`;
    return c.json(
      releaseObjectOf({
        release,
        metadata: details.metadata,
        visibility: details.visibility,
        updatedAt: details.updatedAt,
        downloadUrl: pinnedUrl(base(), release),
        prettyDownloadUrl: pretty,
      }),
    );
  });

  // `/f/{org}/{flake}` is Nix's tarball URL; fh asks the same URL for JSON.
  app.get('/f/:org/:flake', async (c: Context<AppEnv>, next: Next) => {
    if (!wantsJson(c.req.header('accept'))) return next();
    const [org, flake] = [c.req.param('org')!, c.req.param('flake')!];
    if (!(await deps.registry.resolve(c.get('principal'), org, flake, '*'))) throw new NotFound();
    const pretty = `${base()}/f/${encodeURIComponent(org)}/${encodeURIComponent(flake)}/*.tar.gz`;
    return c.json({ project: `${org}/${flake}`, pretty_download_url: pretty });
  });

  app.get('/f/:org/:flake/:req/output/:attr', async (c) => {
    const p = c.get('principal');
    const [org, flake, req, attr] = [c.req.param('org'), c.req.param('flake'), c.req.param('req'), c.req.param('attr')];
    const { release, storePath } = await deps.registry.resolveOutput(p, org, flake, req, attr);
    const answer: { attribute_path: string; store_path: string; token?: string } = {
      attribute_path: attr,
      store_path: storePath,
    };
    if (c.req.query('include_token') === 'true')
      answer.token = await scopedToken(p, org, flake, attr, simplifiedVersion(release.version.text));
    return c.json(answer);
  });

  /**
   * A deploy-only device token for exactly this output of exactly this release: it reads that
   * closure and resolves that output, nothing else. Only a token of the flake's own org can have
   * one made (a narrowing of what it may already read); it never outlives it.
   */
  const scopedToken = async (
    p: Principal,
    org: string,
    flake: string,
    attr: string,
    version: string,
  ): Promise<string> => {
    if (p.kind !== 'token' || p.org.name !== org || !p.scopes.has('read')) {
      throw new Unauthenticated(
        `a scoped token for ${org}/${flake}#${attr} needs a token of ${org} with the read scope`,
      );
    }
    if (p.slices)
      throw new Forbidden(
        'a slice-limited token cannot have a deploy-only token made (it reads closures in every slice)',
      );
    const grant = { org, flake, requirement: `=${version}`, attr };
    const ttlSeconds = ttlWithinCreator(p, undefined, SCOPED_TOKEN_TTL_SECONDS, Math.floor(Date.now() / 1000));
    const minted = await deps.tokens.mint({
      subject: `fh-apply:${p.subject}`,
      ttlSeconds,
      description: `deploy-only (fh): ${org}/${flake}/=${version}#${attr}`,
      grant: {
        org: p.org,
        scopes: ['read'],
        slices: null,
        deploy: [grant],
        ...(p.network ? { network: p.network } : {}),
      },
    });
    await deps.audit.appendNow({
      principal: p,
      action: 'token.create',
      target: `token ${minted.id}`,
      orgId: p.org.id,
      detail: {
        subject: `fh-apply:${p.subject}`,
        scopes: ['read'],
        deploy: [`${org}/${flake}/=${version}#${attr}`],
        expiresAt: minted.expiresAt.toISOString(),
      },
    });
    return minted.token;
  };

  app.get('/cli/status', (c) => {
    const p = c.get('principal');
    if (p.kind === 'anonymous') throw new Unauthenticated('send a Floe token as Bearer');
    return c.json(
      cliStatusOf(p.subject, p.kind === 'token' ? p.expiresAt : undefined, p.kind === 'token' ? p.org.name : null),
    );
  });
}
