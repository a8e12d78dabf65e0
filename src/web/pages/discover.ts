/** Discover: the home page with search, org pages, flake pages and release pages. */
import { html, raw } from 'hono/html';
import type { FlakeSummary } from '../../registry/search.js';
import type { FlakeDetails, ReleaseMetadata } from '../../registry/service.js';
import { pinnedUrl } from '../../registry/urls.js';
import { type Html, type PageContext, badge, bytes, labels, layout, when } from '../layout.js';

/** Rolling versions carry a 40-character commit: show 7, like git does (the full one is in title). */
export function shortVersion(text: string): string {
  return text.replace(/\+rev-([0-9a-f]{7})[0-9a-f]{33}$/, '+rev-$1');
}

export function flakeCard(f: FlakeSummary): Html {
  return html`<a class="card" href="/flakes/${f.org}/${f.flake}" data-testid="flake-card">
    <h3><span class="name">${f.org} /</span> ${f.flake} ${f.visibility !== 'public' ? badge(f.visibility) : ''}</h3>
    <p>${f.description ?? 'No description.'}</p>
    ${labels(f.labels)}
  </a>`;
}

export function homePage(
  ctx: PageContext,
  q: string,
  results: FlakeSummary[],
  orgs: Array<{ name: string; flakes: number }>,
): Html {
  const searching = q.trim() !== '';
  return layout(
    ctx,
    searching ? `Search: ${q}` : 'Flakes',
    html`
    <section class="hero" aria-labelledby="hero-title">
      <h1 id="hero-title">Flakes and binary caches for your org.</h1>
      <p class="lead">Find a flake, pin a release, and substitute its builds from a cache that knows who is asking.</p>
      <form class="search" role="search" method="get" action="/">
        <label class="sr-only" for="q">Search flakes</label>
        <input type="search" id="q" name="q" value="${q}" placeholder="Search by name, description or label" autocomplete="off" maxlength="200">
        <button class="btn" type="submit">Search</button>
      </form>
    </section>
    <div class="layout">
      <section aria-labelledby="results-title">
        <h2 id="results-title">${searching ? html`${results.length} result${results.length === 1 ? '' : 's'} for “${q}”` : 'Recently updated'}</h2>
        ${
          results.length
            ? html`<div class="grid">${results.map(flakeCard)}</div>`
            : html`<div class="card empty"><h2>No flakes found</h2><p>${searching ? 'Try fewer or other words.' : 'Nothing is published yet: run `floe publish` from CI.'}</p></div>`
        }
      </section>
      <aside class="side" aria-label="Organizations">
        <section class="card">
          <h2>Organizations</h2>
          ${orgs.length ? html`<ul class="plain">${orgs.map((o) => html`<li class="row"><a href="/flakes/${o.name}">${o.name}</a><span class="muted small">${o.flakes} flake${o.flakes === 1 ? '' : 's'}</span></li>`)}</ul>` : html`<p class="muted small">None yet.</p>`}
        </section>
        <section class="card">
          <h2>Use the cache</h2>
          <p class="small muted">Sign in once, then Nix substitutes from Floe:</p>
          <pre><code>floe login oidc
nix build nixpkgs#hello</code></pre>
          <a class="small" href="/docs">More in Get started →</a>
        </section>
      </aside>
    </div>`,
  );
}

export function orgPage(ctx: PageContext, org: string, flakes: FlakeSummary[]): Html {
  return layout(
    ctx,
    org,
    html`
    <nav class="crumbs" aria-label="Breadcrumb"><a href="/">Flakes</a> / ${org}</nav>
    <div class="row"><h1>${org}</h1>${ctx.adminOrg === org ? html`<a class="btn secondary" href="/manage/${org}">Manage</a>` : ''}</div>
    <p class="lead">${flakes.length} flake${flakes.length === 1 ? '' : 's'} you can see.</p>
    ${flakes.length ? html`<div class="grid">${flakes.map(flakeCard)}</div>` : html`<div class="card empty"><h2>No flakes here</h2><p>Either nothing is published, or nothing you may read.</p></div>`}`,
  );
}

interface InventoryNode {
  what?: string;
  shortDescription?: string;
  children?: Record<string, InventoryNode>;
  outputs?: Record<string, string> | null;
}

function inventoryTree(nodes: Record<string, InventoryNode>, depth = 0): Html {
  const entries = Object.entries(nodes).slice(0, 200);
  if (!entries.length) return html``;
  return html`<ul class="${depth ? 'tree' : 'tree'}">${entries.map(
    ([name, n]) =>
      html`<li>${name}${n.what ? html` <span class="muted">· ${n.what}</span>` : ''}${n.shortDescription ? html` <span class="muted">— ${n.shortDescription}</span>` : ''}${n.outputs?.out ? html` <span class="badge ok" title="${n.outputs.out}">cached</span>` : ''}${n.children && depth < 4 ? inventoryTree(n.children, depth + 1) : ''}</li>`,
  )}</ul>`;
}

function inventoryOf(meta: ReleaseMetadata): Record<string, InventoryNode> {
  const outputs = meta.outputs as { inventory?: Record<string, InventoryNode> } | undefined;
  return outputs && typeof outputs === 'object' && outputs.inventory && typeof outputs.inventory === 'object'
    ? outputs.inventory
    : {};
}

function usage(
  publicUrl: string,
  org: string,
  flake: string,
  requirement: string,
  latest: FlakeDetails['releases'][number] | undefined,
): Html {
  const inputName = /^[a-zA-Z_][a-zA-Z0-9_-]*$/.test(flake) ? flake : 'input';
  const url = `${publicUrl}/f/${org}/${flake}/${requirement}`;
  return html`<section class="card" aria-labelledby="use-title">
      <h2 id="use-title">Use this flake</h2>
      <label for="flake-url">Flake URL</label>
      <input id="flake-url" type="text" readonly value="${url}" data-testid="flake-url">
      <p class="hint">Any release matching <code>${requirement}</code>; Nix locks the exact one.</p>
      <h3 class="small">With the Floe CLI</h3>
      <pre><code>floe add ${org}/${flake}</code></pre>
      <h3 class="small">As a flake input</h3>
      <pre><code>inputs.${inputName}.url = "${url}";</code></pre>
      ${latest ? oldNixSnippet(publicUrl, inputName, latest, 'fails with “NAR hash mismatch” on a fresh machine once a newer matching release is published') : ''}
    </section>`;
}

/**
 * A Nix that ignores `Link: rel="immutable"` locks a requirement URL by name, so its lock breaks
 * (NAR hash mismatch) once a newer release matches: offer it the release's immutable URL, and say
 * why where the URL is copied (`floe add` does the same on its own).
 */
function oldNixSnippet(
  publicUrl: string,
  inputName: string,
  r: FlakeDetails['releases'][number],
  breaks: string,
): Html {
  return html`<h3 class="small">With Nix older than 2.17 (e.g. 2.8)</h3>
      <pre><code data-testid="old-nix-url">inputs.${inputName}.url = "${pinnedUrl(publicUrl, r)}";</code></pre>
      <p class="hint" data-testid="old-nix-note">Nix older than 2.17 (but for 2.13.5+ and 2.15.2+) ignores the <code>Link</code> header that makes newer Nix lock an exact release: it locks the URL above by name, and that lock ${breaks}. This URL is exactly ${shortVersion(r.version.text)} and never changes; to update, copy a newer release's URL (or run <code>floe add</code>, which picks the right URL for your Nix).</p>`;
}

function releasesTable(d: FlakeDetails): Html {
  return html`<div class="card table-card"><table class="list">
    <thead><tr><th scope="col">Version</th><th scope="col">Published</th><th scope="col">Revision</th><th scope="col" class="num">Size</th></tr></thead>
    <tbody>${d.releases.map(
      (r) => html`<tr>
        <td class="nowrap"><a href="/flakes/${d.org}/${d.flake}/releases/${encodeURIComponent(r.version.text)}" title="${r.version.text}">${shortVersion(r.version.text)}</a> ${r.yanked ? html`<span class="badge danger">yanked</span>` : ''}</td>
        <td>${when(r.createdAt)}</td>
        <td>${r.revision ? html`<code>${r.revision.slice(0, 12)}</code>` : html`<span class="muted">—</span>`}</td>
        <td class="num">${bytes(r.tarballSize)}</td>
      </tr>`,
    )}</tbody></table></div>`;
}

/** The release a flake's page shows: the newest one not yanked. */
export function latestRelease(d: FlakeDetails): FlakeDetails['releases'][number] | undefined {
  return d.releases.find((r) => !r.yanked) ?? d.releases[0];
}

/** `readmeHtml` is the stored rendering of the latest release's README (RegistryService.readmeHtml). */
export function flakePage(ctx: PageContext, publicUrl: string, d: FlakeDetails, readmeHtml: string | undefined): Html {
  const latest = latestRelease(d);
  const meta = latest?.metadata;
  const readme = readmeHtml ? raw(readmeHtml) : undefined;
  const inventory = meta ? inventoryOf(meta) : {};
  const requirement = '*';
  return layout(
    ctx,
    `${d.org}/${d.flake}`,
    html`
    <nav class="crumbs" aria-label="Breadcrumb"><a href="/">Flakes</a> / <a href="/flakes/${d.org}">${d.org}</a> / ${d.flake}</nav>
    <div class="title-row"><h1>${d.flake}</h1>${badge(d.visibility)}${latest ? html`<span class="badge" title="${latest.version.text}">v${shortVersion(latest.version.text)}</span>` : ''}</div>
    <p class="lead">${d.description ?? 'No description.'}</p>
    <div class="layout">
      <div class="stack">
        <section aria-labelledby="readme-title" class="card">
          <h2 id="readme-title" class="sr-only">README</h2>
          ${readme ? html`<div class="readme" data-testid="readme">${readme}</div>` : html`<p class="muted">This release has no README.</p>`}
        </section>
        <section aria-labelledby="outputs-title">
          <h2 id="outputs-title">Outputs</h2>
          ${Object.keys(inventory).length ? html`<div class="card">${inventoryTree(inventory)}</div>` : html`<p class="muted">No outputs inventory was published with this release.</p>`}
        </section>
        <section aria-labelledby="releases-title">
          <h2 id="releases-title">Releases</h2>
          ${releasesTable(d)}
        </section>
      </div>
      <aside class="side" aria-label="About this flake">
        ${usage(publicUrl, d.org, d.flake, requirement, latest)}
        <section class="card">
          <h2>About</h2>
          <dl class="facts">
            <dt>License</dt><dd>${meta?.spdx_identifier ?? 'not stated'}</dd>
            <dt>Latest</dt><dd>${latest ? html`<span title="${latest.version.text}">${shortVersion(latest.version.text)}</span>` : '—'}</dd>
            <dt>Updated</dt><dd>${when(d.updatedAt)}</dd>
            <dt>Releases</dt><dd>${d.releases.length}</dd>
            ${meta?.repo ? html`<dt>Source</dt><dd>${meta.repo}</dd>` : ''}
          </dl>
          ${d.labels.length ? html`<h2 class="small">Labels</h2>${labels(d.labels)}` : ''}
        </section>
      </aside>
    </div>`,
  );
}

export function releasePage(ctx: PageContext, publicUrl: string, d: FlakeDetails, version: string): Html | undefined {
  const r = d.releases.find((x) => x.version.text === version);
  if (!r) return undefined;
  const pinned = `${publicUrl}/f/${d.org}/${d.flake}/=${r.version.text}`;
  const inputName = /^[a-zA-Z_][a-zA-Z0-9_-]*$/.test(d.flake) ? d.flake : 'input';
  const inventory = inventoryOf(r.metadata);
  return layout(
    ctx,
    `${d.org}/${d.flake} ${r.version.text}`,
    html`
    <nav class="crumbs" aria-label="Breadcrumb"><a href="/">Flakes</a> / <a href="/flakes/${d.org}">${d.org}</a> / <a href="/flakes/${d.org}/${d.flake}">${d.flake}</a> / ${shortVersion(r.version.text)}</nav>
    <div class="title-row"><h1>${d.flake} <span class="muted" title="${r.version.text}">${shortVersion(r.version.text)}</span></h1>${r.yanked ? html`<span class="badge danger">yanked</span>` : ''}</div>
    <p class="lead">${r.metadata.description ?? d.description ?? ''}</p>
    ${r.yanked ? html`<div class="notice info">This release is yanked: requirements no longer resolve to it, but existing locks keep working.</div>` : ''}
    <div class="two">
      <section class="card" aria-labelledby="facts-title">
        <h2 id="facts-title">Release</h2>
        <dl class="facts">
          <dt>Published</dt><dd>${when(r.createdAt)} by <code>${r.publishedBy}</code></dd>
          <dt>Revision</dt><dd>${r.revision ? html`<code>${r.revision}</code>` : '—'}</dd>
          <dt>Commits</dt><dd>${r.commitCount ?? '—'}</dd>
          <dt>NAR hash</dt><dd><code>${r.narHash}</code></dd>
          <dt>Last modified</dt><dd>${when(new Date(r.lastModified * 1000).toISOString())}</dd>
          <dt>Source size</dt><dd>${bytes(r.tarballSize)}</dd>
          <dt>License</dt><dd>${r.metadata.spdx_identifier ?? 'not stated'}</dd>
        </dl>
      </section>
      <section class="card" aria-labelledby="pin-title">
        <h2 id="pin-title">Pin exactly this release</h2>
        <label for="pinned-url">Flake URL</label>
        <input id="pinned-url" type="text" readonly value="${pinned}">
        <pre><code>inputs.${inputName}.url = "${pinned}";</code></pre>
        ${oldNixSnippet(publicUrl, inputName, r, 'stops working on a fresh machine if this release is yanked')}
      </section>
    </div>
    <section aria-labelledby="outputs-title">
      <h2 id="outputs-title">Outputs</h2>
      ${Object.keys(inventory).length ? html`<div class="card">${inventoryTree(inventory)}</div>` : html`<p class="muted">No outputs inventory was published with this release.</p>`}
    </section>`,
  );
}

export function notFoundPage(ctx: PageContext): Html {
  return layout(
    ctx,
    'Not found',
    html`<div class="card empty"><h1>Not found</h1><p>There is nothing here${ctx.principal.kind === 'anonymous' ? ', or you need to sign in to see it' : ' that you may see'}.</p>
    <p>${ctx.principal.kind === 'anonymous' ? html`<a class="btn" href="/login?return=${encodeURIComponent(ctx.path)}">Sign in</a> ` : ''}<a class="btn secondary" href="/">Browse flakes</a></p></div>`,
  );
}

export function docsPage(ctx: PageContext, publicUrl: string, trustedKeys: readonly string[]): Html {
  return layout(
    ctx,
    'Get started',
    html`
    <h1>Get started</h1>
    <p class="lead">Floe is a flake registry and a Nix binary cache in one server. Every read and write is checked against who you are.</p>
    <div class="two">
      <section class="card"><h2>1. Sign in from your machine</h2>
        <pre><code>export FLOE_SERVER=${publicUrl}
floe login oidc              # people (browser or --device)
floe login github-action     # CI jobs: no stored secret</code></pre>
        <p class="small muted">This writes a netrc entry and your Nix configuration; tokens are short-lived.</p>
      </section>
      <section class="card"><h2>2. Substitute from the cache</h2>
        <pre><code>extra-substituters = ${publicUrl}/cache
extra-trusted-public-keys = ${trustedKeys.length ? trustedKeys.join(' ') : "<your org's key: floe cache info>"}</code></pre>
        <p class="small muted">Each org signs its narinfos with its own key: trust exactly the keys of the sources you use (<code>floe cache use</code> writes them).</p>
      </section>
      <section class="card"><h2>3. Publish flakes from CI</h2>
        <pre><code>floe publish --rolling --include-output packages.x86_64-linux.default</code></pre>
        <p class="small muted">CI identities (GitHub Actions, GitLab CI) are exchanged for Floe tokens when an org admin trusts them.</p>
      </section>
      <section class="card"><h2>4. Use a flake</h2>
        <pre><code>floe add acme/tools
# or
inputs.tools.url = "${publicUrl}/f/acme/tools/0.1";</code></pre>
        <p class="small muted">Nix older than 2.17 (Debian's 2.8) ignores the <code>Link</code> header and locks that URL by name: its lock breaks (NAR hash mismatch) once a newer release matches. <code>floe add</code> writes the exact release URL for such a Nix; each flake page shows it too.</p>
      </section>
    </div>`,
  );
}
