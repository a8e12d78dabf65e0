/** Running an org (admins): cache usage, members and identity trusts, tokens, slices. */
import type { TokenRecord } from '../../identity/tokens.js';
import { html } from 'hono/html';
import type { StoredTrust } from '../../identity/exchange.js';
import type { OrgUsage } from '../../cache/usage.js';
import type { UsageSnapshot } from '../../cache/usage-history.js';
import { type Html, type PageContext, ago, bytes, count, csrfField, layout, notice, when } from '../layout.js';
import { barChart, lineChart, meter } from '../charts.js';
import { SCOPES } from '../../wire/access.js';

export type ManageTab = 'usage' | 'storage' | 'members' | 'tokens' | 'slices' | 'policies' | 'audit';

const TAB_LABELS: Record<ManageTab, string> = {
  usage: 'Cache usage',
  storage: 'Storage',
  members: 'Members & access',
  tokens: 'Tokens',
  slices: 'Slices',
  policies: 'Policies',
  audit: 'Audit log',
};

export function managePage(
  ctx: PageContext,
  org: string,
  tab: ManageTab,
  tabs: ManageTab[],
  body: Html,
  flash?: Html,
): Html {
  return layout(
    ctx,
    `${TAB_LABELS[tab]} · ${org}`,
    html`
    <nav class="crumbs" aria-label="Breadcrumb"><a href="/flakes/${org}">${org}</a> / Manage</nav>
    <h1>${org}</h1>
    <nav class="tabs" aria-label="Manage ${org}">
      ${tabs.map((t) => html`<a href="/manage/${org}${t === 'usage' ? '' : `/${t}`}"${t === tab ? html` aria-current="page"` : ''}>${TAB_LABELS[t]}</a>`)}
    </nav>
    ${flash ?? ''}
    ${body}`,
  );
}

export interface ServedStats {
  hits: number;
  misses: number;
  narBytesServed: number;
  uploadsAccepted: number;
  uploadsRejected: number;
  since: string;
}

/** The last `days` UTC days, oldest first, with the snapshot of each day or null. */
function dailySeries(
  history: UsageSnapshot[],
  days: number,
  now = new Date(),
): Array<{ day: string; snap: UsageSnapshot | null }> {
  const byDay = new Map(history.map((h) => [h.day, h]));
  const out: Array<{ day: string; snap: UsageSnapshot | null }> = [];
  for (let i = days - 1; i >= 0; i--) {
    const day = new Date(now.getTime() - i * 86_400_000).toISOString().slice(0, 10);
    out.push({ day, snap: byDay.get(day) ?? null });
  }
  return out;
}

export function usageTab(
  org: string,
  u: OrgUsage,
  served: ServedStats,
  publicUrl: string,
  history: UsageSnapshot[] = [],
): Html {
  const lookups = served.hits + served.misses;
  const hitRate = lookups ? served.hits / lookups : 0;
  const pushed30 = u.pushesPerDay.reduce((a, d) => a + d.paths, 0);
  const shortDay = (d: string) =>
    new Date(`${d}T00:00:00Z`).toLocaleDateString('en-GB', { month: 'short', day: 'numeric', timeZone: 'UTC' });
  const series = dailySeries(history, 30);
  return html`
    <div class="stats">
      <div class="card stat"><div class="value" data-testid="stat-paths">${count(u.totalPaths)}</div><div class="what">store paths cached</div></div>
      <div class="card stat"><div class="value">${bytes(u.totalNarBytes)}</div><div class="what">NAR bytes stored</div></div>
      <div class="card stat"><div class="value">${count(pushed30)}</div><div class="what">paths pushed, last 30 days</div></div>
      <div class="card stat"><div class="value">${lookups ? `${(hitRate * 100).toFixed(1)}%` : '—'}</div><div class="what">narinfo hit rate*</div>${meter(hitRate, `hit rate ${(hitRate * 100).toFixed(1)} percent`)}</div>
    </div>
    <div class="two">
      <section class="card" aria-labelledby="pushes-title">
        <h2 id="pushes-title">Paths pushed per day</h2>
        ${barChart(
          u.pushesPerDay.map((d) => ({ label: shortDay(d.day), value: d.paths, title: `${d.day}: ${d.paths} paths` })),
          `Paths pushed per day over the last ${u.pushesPerDay.length} days`,
          count,
        )}
      </section>
      <section class="card" aria-labelledby="bytes-title">
        <h2 id="bytes-title">Bytes pushed per day</h2>
        ${barChart(
          u.pushesPerDay.map((d) => ({ label: shortDay(d.day), value: d.bytes, title: `${d.day}: ${bytes(d.bytes)}` })),
          `NAR bytes pushed per day over the last ${u.pushesPerDay.length} days`,
          bytes,
        )}
      </section>
    </div>
    <section class="card chart-card" aria-labelledby="storage-title" data-testid="storage-over-time">
      <div class="row"><h2 id="storage-title">Storage over time</h2><a class="small" href="/manage/${org}/storage">Quota, retention and pins</a></div>
      ${
        history.length
          ? lineChart(
              series.map((d) => ({
                label: shortDay(d.day),
                value: d.snap?.storedBytes ?? null,
                title: d.snap
                  ? `${d.day}: ${bytes(d.snap.storedBytes)} stored (${bytes(d.snap.logicalBytes)} logical, ${count(d.snap.paths)} ${d.snap.paths === 1 ? 'path' : 'paths'})`
                  : `${d.day}: no snapshot`,
              })),
              `Deduplicated stored bytes per day over the last ${series.length} days`,
              bytes,
              { width: 800, height: 150 },
            )
          : html`<p class="empty small">No daily snapshot yet: the server takes one shortly after it starts, every day, and after each garbage collection.</p>`
      }
      <p class="small muted">Stored bytes (deduplicated, compressed) at each day's last snapshot; days before the first one and days the server was down are gaps.</p>
    </section>
    <h2>Slices</h2>
    <div class="card table-card"><table class="list">
      <thead><tr><th scope="col">Slice</th><th scope="col">Readable by</th><th scope="col" class="num">Paths</th><th scope="col" class="num">Stored</th><th scope="col">Share of the org</th></tr></thead>
      <tbody>${u.slices.map(
        (
          s,
        ) => html`<tr><td><code>${s.slice}</code></td><td>${s.public ? 'anyone' : 'members'}</td><td class="num">${count(s.paths)}</td><td class="num">${bytes(s.narBytes)}</td>
          <td>${meter(u.totalNarBytes ? s.narBytes / u.totalNarBytes : 0, `${s.slice}: share of stored bytes`)}</td></tr>`,
      )}</tbody></table></div>
    <div class="two">
      <section aria-labelledby="recent-title"><h2 id="recent-title">Recent pushes</h2>
        <div class="card table-card">${
          u.recent.length
            ? html`<table class="list"><thead><tr><th scope="col">Path</th><th scope="col">By</th><th scope="col" class="num">Size</th></tr></thead><tbody>${u.recent.map(
                (r) =>
                  html`<tr><td><code title="${r.storePath}">${r.storePath.replace(/^(\/nix\/store\/)?[a-z0-9]{32}-/, '')}</code><div class="small muted">${r.slice} · ${ago(r.at)}</div></td><td class="small"><div class="truncate" title="${r.uploadedBy}">${r.uploadedBy}</div></td><td class="num">${bytes(r.narSize)}</td></tr>`,
              )}</tbody></table>`
            : html`<p class="empty">Nothing pushed yet. <code>floe push ./result</code></p>`
        }</div>
      </section>
      <section aria-labelledby="top-title"><h2 id="top-title">Top uploaders</h2>
        <div class="card table-card">${
          u.topUploaders.length
            ? html`<table class="list"><thead><tr><th scope="col">Principal</th><th scope="col" class="num">Paths</th><th scope="col" class="num">Bytes</th></tr></thead><tbody>${u.topUploaders.map(
                (t) =>
                  html`<tr><td class="small"><div class="truncate" title="${t.uploadedBy}">${t.uploadedBy}</div></td><td class="num">${count(t.paths)}</td><td class="num">${bytes(t.bytes)}</td></tr>`,
              )}</tbody></table>`
            : html`<p class="empty">No uploads yet.</p>`
        }</div>
      </section>
    </div>
    <section aria-labelledby="largest-title"><h2 id="largest-title">Largest paths</h2>
      <div class="card table-card">${
        u.largest.length
          ? html`<table class="list"><thead><tr><th scope="col">Path</th><th scope="col">Slice</th><th scope="col" class="num">NAR size</th></tr></thead><tbody>${u.largest.map(
              (l) =>
                html`<tr><td><code title="${l.storePath}">${l.storePath.replace(/^(\/nix\/store\/)?[a-z0-9]{32}-/, '')}</code></td><td class="small">${l.slice}</td><td class="num">${bytes(l.narSize)}</td></tr>`,
            )}</tbody></table>`
          : html`<p class="empty">Nothing stored yet.</p>`
      }</div>
    </section>
    <h2>Served by this server</h2>
    <div class="stats">
      <div class="card stat"><div class="value">${count(served.hits)}</div><div class="what">narinfo hits</div></div>
      <div class="card stat"><div class="value">${count(served.misses)}</div><div class="what">misses (or denied)</div></div>
      <div class="card stat"><div class="value">${bytes(served.narBytesServed)}</div><div class="what">NAR bytes served</div></div>
      <div class="card stat"><div class="value">${count(served.uploadsAccepted)} / ${count(served.uploadsRejected)}</div><div class="what">uploads accepted / rejected</div></div>
    </div>
    <p class="small muted">* Served counters are this replica's, for every org, since it started ${when(served.since)} (Prometheus has them per replica at <code>/metrics</code>). Substituter for this org: <code>${publicUrl}/cache/${org}/default</code> or the unified <code>${publicUrl}/cache</code>.</p>`;
}

function trustConditions(t: StoredTrust): string {
  const s = t.spec as Record<string, unknown>;
  const parts: string[] = [];
  for (const [k, v] of Object.entries(s)) {
    if (['provider', 'issuer', 'audience', 'scopes', 'slices', 'ttlSeconds', 'clientId'].includes(k)) continue;
    parts.push(`${k} = ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`);
  }
  return parts.join('; ');
}

export function membersTab(
  ctx: PageContext,
  org: string,
  trusts: StoredTrust[],
  form: { error?: string; which?: 'oidc' | 'json'; json?: string; oidc?: Record<string, string> } = {},
): Html {
  const o = form.oidc ?? {};
  return html`
    <p class="lead">Who belongs to ${org}: people and CI jobs are trusted by their identity provider's claims, and get short-lived tokens with the scopes below.</p>
    <div class="card table-card"><table class="list" data-testid="trusts">
      <thead><tr><th scope="col">Provider</th><th scope="col">Conditions</th><th scope="col">Grants</th><th scope="col">Added</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
      <tbody>${
        trusts.length
          ? trusts.map(
              (t) => html`<tr>
          <td><strong>${t.spec.provider}</strong><div class="small muted">${t.issuer}</div>${'clientId' in t.spec && t.spec.clientId ? html`<div class="small muted">web &amp; CLI sign-in as <code>${t.spec.clientId}</code></div>` : ''}</td>
          <td class="small"><code>${trustConditions(t)}</code></td>
          <td class="small">${t.spec.scopes.join(', ')}${t.spec.slices ? html`<div class="muted">slices: ${t.spec.slices.join(', ')}</div>` : ''}<div class="muted">tokens live ${Math.round((t.spec.ttlSeconds ?? 3600) / 60)} min</div></td>
          <td class="small">${when(t.createdAt)}</td>
          <td><form method="post" action="/manage/${org}/members/${t.id}/remove" class="inline">${csrfField(ctx)}<button class="btn danger small" type="submit" aria-label="Remove trust ${t.id}">Remove</button></form></td>
        </tr>`,
            )
          : html`<tr><td colspan="5" class="empty">No trusts yet: only tokens an admin creates can reach this org.</td></tr>`
      }</tbody></table></div>
    <div class="two">
      <section class="card" aria-labelledby="add-oidc-title">
        <h2 id="add-oidc-title">Let people sign in (OIDC)</h2>
        <form method="post" action="/manage/${org}/members/oidc">
          ${csrfField(ctx)}
          <div class="field"><label for="issuer">Issuer URL</label><input id="issuer" name="issuer" required value="${o.issuer ?? ''}" placeholder="https://login.microsoftonline.com/<tenant>/v2.0"></div>
          <div class="field"><label for="clientId">Client id</label><input id="clientId" name="clientId" required value="${o.clientId ?? ''}" placeholder="floe"><div class="hint">A public client at your provider; redirect URIs: this server's <code>/login/callback</code> and loopback (CLI).</div></div>
          <div class="field"><label for="claim">Required claim</label><input id="claim" name="claim" required value="${o.claim ?? ''}" placeholder="groups"></div>
          <div class="field"><label for="value">Claim value</label><input id="value" name="value" required value="${o.value ?? ''}" placeholder="engineers"></div>
          <fieldset><legend>Scopes</legend><div class="checks">
            ${SCOPES.map((s) => html`<label><input type="checkbox" name="scopes" value="${s}"${s === 'read' ? html` checked` : ''}> ${s}</label>`)}
          </div></fieldset>
          ${form.error && form.which === 'oidc' ? html`<p class="error-text" role="alert">${form.error}</p>` : ''}
          <button class="btn" type="submit">Add trust</button>
        </form>
      </section>
      <section class="card" aria-labelledby="add-json-title">
        <h2 id="add-json-title">Any provider (JSON)</h2>
        <form method="post" action="/manage/${org}/members/json">
          ${csrfField(ctx)}
          <div class="field"><label for="spec">Trust rule</label>
            <textarea id="spec" name="spec" spellcheck="false" aria-describedby="${form.error && form.which === 'json' ? 'spec-error spec-hint' : 'spec-hint'}"${form.error && form.which === 'json' ? html` aria-invalid="true"` : ''}>${form.json ?? '{\n  "provider": "github",\n  "ownerId": "1001",\n  "repositoryIds": ["2002"],\n  "refs": ["refs/heads/main"],\n  "scopes": ["publish", "write"]\n}'}</textarea>
            ${form.error && form.which === 'json' ? html`<p class="error-text" id="spec-error" role="alert">${form.error}</p>` : ''}
            <div class="hint" id="spec-hint">Providers: <code>github</code> (ownerId), <code>gitlab</code> (namespaceId), <code>aws</code> (accountId, arnPatterns), <code>oidc</code> (issuer, claims). Same as <code>floe trust add</code>.</div>
          </div>
          <button class="btn" type="submit">Add trust</button>
        </form>
      </section>
    </div>`;
}

export type TokenRow = TokenRecord;

export function tokensTab(
  ctx: PageContext,
  org: string,
  rows: TokenRow[],
  slices: string[],
  opts: { all: boolean; created?: { token: string; subject: string; expiresAt: string }; error?: string },
): Html {
  const now = new Date().toISOString();
  return html`
    ${
      opts.created
        ? html`<div class="notice ok" role="status" data-testid="new-token">
        <strong>Token created for ${opts.created.subject}.</strong> Copy it now: it is shown only once. It expires ${when(opts.created.expiresAt)}.
        <div class="secret"><label class="sr-only" for="new-secret">New token</label><code id="new-secret" data-testid="secret">${opts.created.token}</code></div>
      </div>`
        : ''
    }
    ${opts.error ? notice('error', opts.error) : ''}
    <div class="row"><p class="lead">Tokens for machines and scripts. People sign in instead; their tokens show here too while they last.</p>
      <a class="small" href="/manage/${org}/tokens${opts.all ? '' : '?all=1'}">${opts.all ? 'Hide expired and revoked' : 'Show expired and revoked'}</a></div>
    <div class="card table-card"><table class="list" data-testid="tokens">
      <thead><tr><th scope="col">Subject</th><th scope="col">Scopes</th><th scope="col">Created</th><th scope="col">Expires</th><th scope="col">Last used</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
      <tbody>${
        rows.length
          ? rows.map((r) => {
              const state = r.revoked_at ? 'revoked' : r.expires_at <= now ? 'expired' : 'active';
              return html`<tr data-subject="${r.subject}">
          <td><strong>${r.subject}</strong>${r.description ? html`<div class="small muted">${r.description}</div>` : ''}</td>
          <td class="small">${r.scopes.split(' ').join(', ')}${r.slices ? html`<div class="muted">slices: ${(JSON.parse(r.slices) as string[]).join(', ')}</div>` : ''}</td>
          <td class="small">${when(r.created_at)}</td>
          <td class="small">${when(r.expires_at)}</td>
          <td class="small">${r.last_used_at ? ago(r.last_used_at) : html`<span class="muted">never</span>`}</td>
          <td>${
            state === 'active'
              ? html`<form method="post" action="/manage/${org}/tokens/${r.id}/revoke" class="inline">${csrfField(ctx)}<button class="btn danger small" type="submit" aria-label="Revoke ${r.subject}">Revoke</button></form>`
              : html`<span class="badge ${state === 'revoked' ? 'danger' : ''}">${state}</span>`
          }</td>
        </tr>`;
            })
          : html`<tr><td colspan="6" class="empty">No active tokens.</td></tr>`
      }</tbody></table></div>
    <section class="card" aria-labelledby="create-title">
      <h2 id="create-title">Create a token</h2>
      <form method="post" action="/manage/${org}/tokens">
        ${csrfField(ctx)}
        <div class="two">
          <div>
            <fieldset><legend>Kind</legend><div class="checks">
              <label><input type="radio" name="kind" value="device" checked> Device (read the cache, e.g. a NixOS host)</label>
              <label><input type="radio" name="kind" value="api"> API / CI (scopes below)</label>
            </div></fieldset>
            <div class="field"><label for="name">Name</label><input id="name" name="name" required maxlength="100" pattern="[A-Za-z0-9._@:-]+" placeholder="web-01"><div class="hint">Becomes the subject: <code>device:web-01</code> or <code>token:deploy</code>.</div></div>
            <div class="field"><label for="description">Description <span class="muted">(optional)</span></label><input id="description" name="description" maxlength="500"></div>
            <div class="field"><label for="deploy">Deploy only <span class="muted">(devices, optional)</span></label><textarea id="deploy" name="deploy" rows="3" spellcheck="false" placeholder="${org}/infra/*#nixosConfigurations.web" aria-describedby="deploy-hint"></textarea><div class="hint" id="deploy-hint">One flake output per line: the token then reads exactly those closures (what <code>floe apply</code> needs), nothing else.</div></div>
          </div>
          <div>
            <fieldset><legend>Scopes (API tokens)</legend><div class="checks">
              ${SCOPES.map((s) => html`<label><input type="checkbox" name="scopes" value="${s}"${s === 'read' ? html` checked` : ''}> ${s}</label>`)}
            </div></fieldset>
            <fieldset><legend>Slices</legend><div class="checks">
              <label><input type="checkbox" name="slices" value="*" checked> all</label>
              ${slices.map((s) => html`<label><input type="checkbox" name="slices" value="${s}"> ${s}</label>`)}
            </div></fieldset>
            <div class="field"><label for="ttl">Lifetime</label><select id="ttl" name="ttl">
              ${[
                ['1d', '1 day'],
                ['7d', '7 days'],
                ['30d', '30 days'],
                ['90d', '90 days'],
                ['365d', '1 year'],
              ].map(([v, l]) => html`<option value="${v}"${v === '90d' ? html` selected` : ''}>${l}</option>`)}
            </select></div>
          </div>
        </div>
        <button class="btn" type="submit">Create token</button>
      </form>
    </section>`;
}

export interface SlicesView {
  slices: Array<{ name: string; public: boolean; inView: boolean; priority: number; trusts: string[] }>;
  follows: Array<{ org: string; slice: string; priority: number }>;
  keys: Array<{ name: string; publicKey: string; state: string }>;
}

export function slicesTab(ctx: PageContext, org: string, publicUrl: string, view: SlicesView, error?: string): Html {
  const ordered = [...view.slices].sort(
    (a, b) =>
      Number(b.name === 'default') - Number(a.name === 'default') ||
      a.priority - b.priority ||
      a.name.localeCompare(b.name),
  );
  return html`
    <p class="lead">Slices are separately readable parts of the cache. Every slice is closure-complete; <code>default</code> always exists.
    Members' <code>${publicUrl}/cache</code> consults the slices marked <em>in view</em> (default first) and the slices ${org} follows; every slice also answers at its own URL.</p>
    ${error ? notice('error', error) : ''}
    <div class="card table-card"><table class="list">
      <thead><tr><th scope="col">Slice</th><th scope="col">Substituter</th><th scope="col">Readable by</th><th scope="col">On /cache</th><th scope="col">Takes references from</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
      <tbody>${ordered.map(
        (
          s,
        ) => html`<tr><td><code>${s.name}</code></td><td class="small"><code>${publicUrl}/cache/${org}/${s.name}</code></td><td>${s.public ? html`<span class="badge ok">anyone</span>` : html`<span class="badge private">members</span>`}</td>
        <td>${s.inView ? html`<span class="badge ok">in view${s.name === 'default' ? '' : ` (${s.priority})`}</span>` : html`<span class="badge">own URL only</span>`}</td>
        <td class="small">${(s.name === 'default' ? s.trusts : ['default', ...s.trusts]).join(', ') || 'uploads only'}</td>
        <td><form method="post" action="/manage/${org}/slices/${s.name}/visibility" class="inline">${csrfField(ctx)}<input type="hidden" name="public" value="${s.public ? '0' : '1'}"><button class="btn secondary small" type="submit">Make ${s.public ? 'private' : 'public'}</button></form>
        ${s.name === 'default' ? '' : html`<form method="post" action="/manage/${org}/slices/${s.name}/view" class="inline">${csrfField(ctx)}<input type="hidden" name="inView" value="${s.inView ? '0' : '1'}"><button class="btn secondary small" type="submit">${s.inView ? 'Remove from view' : 'Add to view'}</button></form>`}</td></tr>`,
      )}${view.follows.map(
        (f) =>
          html`<tr><td><code>${f.org}/${f.slice}</code></td><td class="small"><code>${publicUrl}/cache/${f.org}/${f.slice}</code></td><td><span class="badge">followed</span></td><td><span class="badge ok">in view (${f.priority})</span></td><td class="small">never linked</td><td></td></tr>`,
      )}</tbody></table></div>
    <section class="card" aria-labelledby="keys-title">
      <h2 id="keys-title">Signing keys</h2>
      <p class="small muted">Narinfos of ${org}'s slices are signed with these keys; machines put them in <code>trusted-public-keys</code> (<code>floe cache use</code> does). Rotate with <code>floe keys rotate --org ${org}</code>.</p>
      <ul>${view.keys.map((k) => html`<li><code>${k.publicKey}</code> <span class="badge${k.state === 'active' ? ' ok' : ''}">${k.state}</span></li>`)}</ul>
    </section>
    <section class="card" aria-labelledby="new-slice-title">
      <h2 id="new-slice-title">New slice</h2>
      <form method="post" action="/manage/${org}/slices" class="row start">
        ${csrfField(ctx)}
        <div class="field"><label for="slice-name">Name</label><input id="slice-name" name="name" required pattern="[a-z0-9][a-z0-9_\\-]{0,62}" placeholder="releases"></div>
        <label class="check-inline"><input type="checkbox" name="public" value="1"> readable by anyone</label>
        <label class="check-inline"><input type="checkbox" name="inView" value="1"> in members' view</label>
        <button class="btn" type="submit">Create slice</button>
      </form>
    </section>`;
}
