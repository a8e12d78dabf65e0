/** The page shell (landmarks, navigation, who is signed in) and small shared components. */
import { html, raw } from 'hono/html';
import type { HtmlEscapedString } from 'hono/utils/html';
import type { Principal } from '../identity/principal.js';
import { CSS_PATH } from './style.js';
import { formatBytes } from '../units.js';

export type Html = HtmlEscapedString | Promise<HtmlEscapedString>;

export interface PageContext {
  principal: Principal;
  csrf: string;
  /** Path of the current page (for aria-current and sign-in return). */
  path: string;
  /** The org the signed-in person may administer, if any (for the nav). */
  adminOrg?: string;
}

const LOGO = raw(
  `<svg viewBox="0 0 32 32" aria-hidden="true" focusable="false"><rect width="32" height="32" rx="8" fill="#3451d1"/><path d="M16 6v20M7.3 11l17.4 10M7.3 21l17.4-10" stroke="#fff" stroke-width="2.4" stroke-linecap="round"/><circle cx="16" cy="16" r="3.2" fill="#fff"/></svg>`,
);

export function whoLabel(p: Principal): string {
  switch (p.kind) {
    case 'anonymous':
      return '';
    case 'server-admin':
      return 'server admin';
    case 'token': {
      const c = p.identity?.claims;
      const name =
        c &&
        (typeof c.email === 'string'
          ? c.email
          : typeof c.preferred_username === 'string'
            ? c.preferred_username
            : undefined);
      return `${name ?? p.subject} · ${p.org.name}`;
    }
  }
}

export function layout(ctx: PageContext, title: string, body: Html, opts: { status?: number } = {}): Html {
  void opts;
  const signedIn = ctx.principal.kind !== 'anonymous';
  const cur = (prefix: string) =>
    ctx.path === prefix || (prefix !== '/' && ctx.path.startsWith(prefix)) ? raw(' aria-current="page"') : '';
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · Floe</title>
<link rel="stylesheet" href="${CSS_PATH}">
<meta name="color-scheme" content="light dark">
</head>
<body>
<a class="skip" href="#content">Skip to content</a>
<header class="site">
  <div class="wrap">
    <a class="brand" href="/">${LOGO}<span>Floe</span></a>
    <nav class="main" aria-label="Main">
      <a href="/"${cur('/')}>Flakes</a>
      ${ctx.adminOrg ? html`<a href="/manage/${ctx.adminOrg}"${cur('/manage/')}>Manage ${ctx.adminOrg}</a>` : ''}
      <a href="/docs"${cur('/docs')}>Get started</a>
    </nav>
    <div class="who">
      ${
        signedIn
          ? html`<span data-testid="who">${whoLabel(ctx.principal)}</span>
            <form method="post" action="/logout" class="inline">
              <input type="hidden" name="_csrf" value="${ctx.csrf}">
              <button class="btn secondary small" type="submit">Sign out</button>
            </form>`
          : ctx.path.startsWith('/login')
            ? ''
            : html`<a class="btn small" href="/login?return=${encodeURIComponent(ctx.path)}">Sign in</a>`
      }
    </div>
  </div>
</header>
<main id="content" tabindex="-1">
  <div class="wrap">
${body}
  </div>
</main>
<footer class="site">
  <div class="wrap"><span>Floe — flakes and binary caches for your org</span><span><a href="/readyz">status</a></span></div>
</footer>
</body>
</html>`;
}

export function badge(visibility: string): Html {
  if (visibility === 'public') return html`<span class="badge">public</span>`;
  return html`<span class="badge ${visibility}">${visibility}</span>`;
}

export function labels(list: string[]): Html {
  if (!list.length) return html``;
  return html`<div class="labels">${list.map((l) => html`<span class="label">${l}</span>`)}</div>`;
}

export function csrfField(ctx: PageContext): Html {
  return html`<input type="hidden" name="_csrf" value="${ctx.csrf}">`;
}

export function notice(kind: 'error' | 'ok' | 'info', text: Html | string): Html {
  return html`<div class="notice ${kind}" role="${kind === 'error' ? 'alert' : 'status'}">${text}</div>`;
}

/** Sizes on pages: short (`5.0 GiB`, `123 MiB`). */
export function bytes(n: number): string {
  return formatBytes(n, { short: true });
}

export function count(n: number): string {
  return n.toLocaleString('en-US');
}

/** A date people read (and a machine-readable <time>). */
export function when(iso: string | null | undefined): Html {
  if (!iso) return html`<span class="muted">—</span>`;
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return html`${iso}`;
  const label = d.toLocaleDateString('en-GB', { year: 'numeric', month: 'short', day: 'numeric', timeZone: 'UTC' });
  return html`<time datetime="${d.toISOString()}" title="${d.toISOString()}">${label}</time>`;
}

export function ago(iso: string): string {
  const s = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
  if (s < 60) return 'just now';
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} days ago`;
}
