import { html } from 'hono/html';
import { type PageContext, layout } from './layout.js';
import type { Ctx } from './route-kit.js';
import { SECURITY_HEADERS } from './security-headers.js';
import { csrfToken } from './session.js';

/** An error on a web page, as a page: client errors say what to fix, server errors only the request id. */
export async function webErrorPage(c: Ctx, publicUrl: string, status: number, message: string): Promise<Response> {
  const ctx: PageContext = { principal: c.get('principal'), csrf: csrfToken(c, publicUrl), path: c.req.path };
  const title =
    status >= 500
      ? 'Something went wrong'
      : status === 403
        ? 'Not allowed'
        : status === 401
          ? 'Sign in again'
          : 'That did not work';
  const body = await layout(
    ctx,
    title,
    html`<div class="card empty"><h1>${title}</h1><p>${message}</p><p><a class="btn secondary" href="/">Back to flakes</a></p></div>`,
  );
  const res = await c.html(body, status as 200);
  for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.headers.set(k, v);
  res.headers.set('Cache-Control', 'no-store');
  return res;
}
