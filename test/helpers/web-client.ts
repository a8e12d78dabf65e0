/** A cookie-keeping client for the web interface's HTTP tests (no browser): sessions and CSRF. */
import { expect } from 'vitest';

export class CookieJar {
  readonly cookies = new Map<string, string>();
  /** Every Set-Cookie line received, for flag checks. */
  readonly raw: string[] = [];

  take(res: Response): void {
    for (const line of res.headers.getSetCookie()) {
      this.raw.push(line);
      const [pair] = line.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq);
      const value = pair!.slice(eq + 1);
      if (/max-age=0/i.test(line) || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  header(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  get csrf(): string {
    return this.cookies.get('floe_csrf')!;
  }
}

/** GET/POST as a browser would (same Origin, form bodies, no redirects followed), keeping cookies. */
export function webClient(server: () => { url: string }, defaults: Record<string, string> = {}) {
  const get = async (jar: CookieJar, p: string): Promise<Response> => {
    const res = await fetch(`${server().url}${p}`, {
      headers: { Cookie: jar.header(), ...defaults },
      redirect: 'manual',
    });
    jar.take(res);
    return res;
  };
  const post = async (
    jar: CookieJar,
    p: string,
    form: Record<string, string>,
    headers: Record<string, string> = {},
  ): Promise<Response> => {
    const res = await fetch(`${server().url}${p}`, {
      method: 'POST',
      headers: {
        Cookie: jar.header(),
        'Content-Type': 'application/x-www-form-urlencoded',
        Origin: server().url,
        ...defaults,
        ...headers,
      },
      body: new URLSearchParams(form),
      redirect: 'manual',
    });
    jar.take(res);
    return res;
  };
  /** Signs in with a Floe token through the login form; the session cookie holds a fresh token. */
  const signedIn = async (token: string): Promise<CookieJar> => {
    const jar = new CookieJar();
    await get(jar, '/login');
    const res = await post(jar, '/login/token', { _csrf: jar.csrf, token, return: '/' });
    expect(res.status).toBe(303);
    expect(jar.cookies.get('floe_session')).toMatch(/^floe_/);
    return jar;
  };
  return { get, post, signedIn };
}
