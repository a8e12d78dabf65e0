/** The tokens tab of an org: its tokens, and the form that makes one (shown once). */
import type { TokenRecord } from '../../identity/tokens.js';
import { html } from 'hono/html';
import { type Html, type PageContext, ago, csrfField, notice, when } from '../layout.js';
import { SCOPES } from '../../wire/access.js';

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
