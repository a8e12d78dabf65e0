/** The members tab of an org: identity trusts, and the forms that add them. */
import { html } from 'hono/html';
import type { StoredTrust } from '../../identity/exchange.js';
import { type Html, type PageContext, csrfField, when } from '../layout.js';
import { SCOPES } from '../../wire/access.js';

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
