/** The sign-in page: one button per org identity provider that allows web sign-in, and the token form. */
import { html } from 'hono/html';
import { type Html, type PageContext, csrfField, layout, notice } from '../layout.js';

/** An identity provider an org lets people sign in with (ExchangeService.interactiveLogins). */
export interface WebLogin {
  org: string;
  issuer: string;
}

export function loginPage(ctx: PageContext, logins: WebLogin[], returnTo: string, error?: string): Html {
  return layout(
    ctx,
    'Sign in',
    html`<div class="login-box">
        <h1>Sign in to Floe</h1>
        <p class="lead">With your organization's identity provider.</p>
        ${error ? notice('error', error.slice(0, 300)) : ''}
        <section class="card" aria-labelledby="providers-title">
          <h2 id="providers-title" class="sr-only">Identity providers</h2>
          ${
            logins.length
              ? logins.map(
                  (l) => html`<form method="post" action="/login/start" class="provider">
                ${csrfField(ctx)}<input type="hidden" name="org" value="${l.org}"><input type="hidden" name="issuer" value="${l.issuer}"><input type="hidden" name="return" value="${returnTo}">
                <div><strong>${l.org}</strong><div class="small muted">${new URL(l.issuer).host}</div></div>
                <button class="btn" type="submit">Continue with ${l.org}</button>
              </form>`,
                )
              : html`<p class="muted">No org lets people sign in here yet. An org admin adds an OIDC trust with a client id on the org's Members page (or <code>floe trust add ORG --spec '{"provider":"oidc",…,"clientId":"…"}'</code>).</p>`
          }
        </section>
        <details class="card small"><summary>Sign in with a token</summary>
          <form method="post" action="/login/token">
            ${csrfField(ctx)}<input type="hidden" name="return" value="${returnTo}">
            <div class="field"><label for="token">Floe token</label><input id="token" name="token" type="password" autocomplete="off" required></div>
            <p class="hint">For server admins and automation accounts. The browser gets its own short-lived token; yours is not stored.</p>
            <button class="btn secondary" type="submit">Sign in with token</button>
          </form>
        </details>
      </div>`,
  );
}
