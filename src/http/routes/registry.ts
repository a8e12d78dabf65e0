/**
 * The flake registry over HTTP: Nix's lockable tarball protocol at `/f/...`, the flakehub-push
 * publishing protocol at its own paths (`/token/status`, `/upload/...`, `/publish/...`), and
 * Floe's JSON API under `/api/v1/flakes`.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Context, Hono } from 'hono';
import { InvalidInput, NotFound, Unauthenticated } from '../../errors.js';
import { DEFAULT_TARBALL_LIMITS } from '../../registry/tarball.js';
import type { Release, RegistryService } from '../../registry/service.js';
import { pinnedUrl } from '../../registry/urls.js';
import type { Limits } from '../../config.js';
import type { AppEnv } from '../context.js';
import { readJson, readSmallBody } from '../body.js';
import { missResponse } from '../errors.js';
import { queryInt } from '../validate.js';

export interface RegistryRouteDeps {
  registry: RegistryService;
  limits: Limits;
  publicUrl: () => string;
}

function immutableLink(base: string, r: Release): string {
  const q = new URLSearchParams();
  if (r.revision) q.set('rev', r.revision);
  if (r.commitCount !== null) q.set('revCount', String(r.commitCount));
  q.set('lastModified', String(r.lastModified));
  q.set('narHash', r.narHash);
  return `<${pinnedUrl(base, r)}?${q.toString()}>; rel="immutable"`;
}

function showRelease(base: string, r: Release) {
  return {
    id: r.id,
    version: r.version.text,
    revision: r.revision,
    commitCount: r.commitCount,
    narHash: r.narHash,
    lastModified: r.lastModified,
    yanked: r.yanked,
    publishedAt: r.createdAt,
    url: pinnedUrl(base, r),
  };
}

export function registryRoutes(app: Hono<AppEnv>, deps: RegistryRouteDeps): void {
  const base = () => deps.publicUrl();

  // ---- Nix: lockable tarballs ----------------------------------------------------------------
  app.on(['GET', 'HEAD'], '/f/pinned/:org/:flake/:version/:id/source.tar.gz', async (c) => {
    const release = await deps.registry.release(
      c.get('principal'),
      c.req.param('org'),
      c.req.param('flake'),
      c.req.param('id'),
    );
    if (!release || release.version.text !== c.req.param('version')) return missResponse();
    const etag = `"${release.tarballKey.replace(/^tarball-|\.tar\.gz$/g, '')}"`;
    const headers = {
      ETag: etag,
      'Cache-Control': 'private, max-age=31536000, immutable',
      'Content-Type': 'application/gzip',
      Link: immutableLink(base(), release),
    };
    if (c.req.header('if-none-match') === etag) return c.body(null, 304, headers);
    if (c.req.method === 'HEAD')
      return c.body(null, 200, { ...headers, 'Content-Length': String(release.tarballSize) });
    const read = await deps.registry.openTarball(release);
    if (!read) return missResponse();
    return new Response(Readable.toWeb(read.body) as ReadableStream, {
      status: 200,
      headers: { ...headers, 'Content-Length': String(release.tarballSize) },
    });
  });

  /** Resolves a requirement and redirects to the immutable release; `*` when none is given. */
  const resolveAndRedirect = async (c: Context<AppEnv>) => {
    const req = (c.req.param('req') ?? '*').replace(/\.tar\.gz$/, '');
    const release = await deps.registry.resolve(c.get('principal'), c.req.param('org')!, c.req.param('flake')!, req);
    if (!release) return missResponse();
    return c.body(null, 302, {
      Location: pinnedUrl(base(), release),
      Link: immutableLink(base(), release),
      'Cache-Control': 'no-store',
    });
  };
  app.on(['GET', 'HEAD'], '/f/:org/:flake/:req', resolveAndRedirect);
  app.on(['GET', 'HEAD'], '/f/:org/:flake', resolveAndRedirect);

  // ---- flakehub-push --------------------------------------------------------------------------
  app.get('/token/status', (c) => {
    const p = c.get('principal');
    if (p.kind === 'anonymous')
      throw new Unauthenticated('send a Floe token (or a CI identity exchanged for one) as Bearer');
    return c.json({
      token_type: p.kind,
      org: p.kind === 'token' ? p.org.name : null,
      subject: p.subject,
      expires_at: p.kind === 'token' && p.expiresAt ? new Date(p.expiresAt * 1000).toISOString() : null,
    });
  });
  app.post('/upload/*', async (c) => {
    // /upload/{org}/{flake}/{version}/{len}/{sha256 as standard base64, which may contain "/"}
    const rest = c.req.path.slice('/upload/'.length).split('/');
    if (rest.length < 5)
      throw new InvalidInput('upload path', 'expected /upload/{org}/{flake}/{version}/{size}/{sha256-base64}');
    const [org, flake, version, len] = rest.map((s) => decodeSegment(s));
    const digest = Buffer.from(decodeSegment(rest.slice(4).join('/')), 'base64');
    if (digest.length !== 32)
      throw new InvalidInput('upload path', 'the last segment must be the base64 SHA-256 of the tarball');
    const readMetadata = () => readJson(c.env.incoming, 2 * deps.limits.maxSmallBodyBytes);
    const staged = await deps.registry.stage(c.get('principal'), {
      org: org!,
      flake: flake!,
      version: version!,
      size: Number(len),
      sha256: digest.toString('hex'),
      readMetadata,
    });
    return c.json({ s3_upload_url: `${base()}/api/v1/release-uploads/${staged.id}`, uuid: staged.id });
  });
  app.put('/api/v1/release-uploads/:id', async (c) => {
    // flakehub-push sends S3's checksum header (base64 SHA-256): a body that does not match it is refused as S3 would.
    const checksum = c.req.header('x-amz-checksum-sha256');
    await deps.registry.receiveTarball(c.req.param('id'), async (staged) => {
      const body = await readSmallBody(c.env.incoming, Math.min(staged, DEFAULT_TARBALL_LIMITS.maxCompressedBytes));
      if (checksum !== undefined && createHash('sha256').update(body).digest('base64') !== checksum.trim()) {
        throw new InvalidInput('x-amz-checksum-sha256', 'does not match the SHA-256 of the body');
      }
      return body;
    });
    return c.body(null, 200);
  });
  app.post('/publish/:id', async (c) => {
    const release = await deps.registry.publishStaged(c.get('principal'), c.req.param('id'));
    return c.json(showRelease(base(), release));
  });

  // ---- Floe API -------------------------------------------------------------------------------
  app.get('/api/v1/search', async (c) => {
    const q = c.req.query('q') ?? '';
    if (q.length > 200) throw new InvalidInput('q', 'at most 200 characters');
    const limit = Math.min(
      queryInt('limit', c.req.query('limit'), { min: 1, max: Number.MAX_SAFE_INTEGER }) ?? 50,
      500,
    );
    return c.json({ results: await deps.registry.listFlakes(c.get('principal'), { query: q, limit }) });
  });
  app.get('/api/v1/flake-orgs', async (c) => {
    // Orgs with at least one flake the caller can see in listings.
    const flakes = await deps.registry.listFlakes(c.get('principal'), { limit: 500_000 });
    const counts = new Map<string, number>();
    for (const f of flakes) counts.set(f.org, (counts.get(f.org) ?? 0) + 1);
    return c.json({
      orgs: [...counts].sort(([a], [b]) => (a < b ? -1 : 1)).map(([name, flakes]) => ({ name, flakes })),
    });
  });
  app.get('/api/v1/orgs/:org/flakes', async (c) => {
    return c.json({
      flakes: await deps.registry.listFlakes(c.get('principal'), { org: c.req.param('org'), limit: 500 }),
    });
  });
  app.get('/api/v1/flakes/:org/:flake/releases', async (c) => {
    const all = await deps.registry.releases(c.get('principal'), c.req.param('org'), c.req.param('flake'));
    if (!all) throw new NotFound();
    return c.json({
      org: c.req.param('org'),
      flake: c.req.param('flake'),
      releases: all.map((r) => showRelease(base(), r)),
    });
  });
  app.get('/api/v1/flakes/:org/:flake/resolve/:req', async (c) => {
    const r = await deps.registry.resolve(
      c.get('principal'),
      c.req.param('org'),
      c.req.param('flake'),
      c.req.param('req'),
    );
    if (!r) throw new NotFound();
    return c.json(showRelease(base(), r));
  });
  app.get('/api/v1/flakes/:org/:flake/resolve/:req/output/:attr', async (c) => {
    const r = await deps.registry.resolveOutput(
      c.get('principal'),
      c.req.param('org'),
      c.req.param('flake'),
      c.req.param('req'),
      c.req.param('attr'),
    );
    return c.json({ ...showRelease(base(), r.release), attribute: c.req.param('attr'), storePath: r.storePath });
  });
  app.post('/api/v1/flakes/:org/:flake/releases/:version/yank', async (c) => {
    await deps.registry.yank(c.get('principal'), c.req.param('org'), c.req.param('flake'), c.req.param('version'));
    return c.json({ yanked: true });
  });
}

/** decodeURIComponent throws a URIError on a malformed escape such as `%ff`: that is the client's mistake. */
function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new InvalidInput('upload path', `malformed percent-encoding in ${JSON.stringify(segment.slice(0, 100))}`);
  }
}
