/**
 * Web sessions and CSRF protection.
 *
 * The session cookie holds a short-lived Floe token (minted at sign-in, revoked at sign-out), so
 * replicas share sessions through the tokens table they already share, and revocation works like
 * for any token. Cookies are HttpOnly, SameSite=Lax, Path=/, and Secure when the public URL is
 * https. The session cookie is honoured only on the web interface's own paths, never on /api or
 * /cache (those take explicit credentials), so a cross-site form cannot drive the JSON API.
 *
 * CSRF: every POST must carry `_csrf` equal to the `floe_csrf` cookie (double submit; the cookie
 * is random per browser and HttpOnly, the pages render its value into their forms) AND, when the
 * browser sends Origin (all current browsers do on POST), an Origin equal to the public URL's.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { Context } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import type { AppEnv } from '../http/context.js';

export const SESSION_COOKIE = 'floe_session';
export const CSRF_COOKIE = 'floe_csrf';
export const LOGIN_COOKIE = 'floe_login';

export function secureCookies(publicUrl: string): boolean {
  return publicUrl.startsWith('https://');
}

function cookieOptions(publicUrl: string, maxAgeSeconds?: number) {
  return {
    path: '/',
    httpOnly: true,
    sameSite: 'Lax' as const,
    secure: secureCookies(publicUrl),
    ...(maxAgeSeconds !== undefined ? { maxAge: maxAgeSeconds } : {}),
  };
}

export function setSession(c: Context<AppEnv>, publicUrl: string, token: string, expiresAt: Date): void {
  const maxAge = Math.max(1, Math.floor((expiresAt.getTime() - Date.now()) / 1000));
  setCookie(c, SESSION_COOKIE, token, cookieOptions(publicUrl, maxAge));
}

export function clearSession(c: Context<AppEnv>, publicUrl: string): void {
  deleteCookie(c, SESSION_COOKIE, cookieOptions(publicUrl));
}

export function sessionToken(c: Context<AppEnv>): string | undefined {
  const v = getCookie(c, SESSION_COOKIE);
  return v && v.length < 8192 ? v : undefined;
}

/** The browser's CSRF token, created on first sight. */
export function csrfToken(c: Context<AppEnv>, publicUrl: string): string {
  const existing = getCookie(c, CSRF_COOKIE);
  if (existing && /^[A-Za-z0-9_-]{32,64}$/.test(existing)) return existing;
  const fresh = randomBytes(24).toString('base64url');
  setCookie(c, CSRF_COOKIE, fresh, cookieOptions(publicUrl, 30 * 86400));
  return fresh;
}

/** Why a POST fails the CSRF check, or undefined when it passes. */
export function csrfFailure(c: Context<AppEnv>, publicUrl: string, submitted: unknown): string | undefined {
  const origin = c.req.header('origin');
  const expected = new URL(publicUrl).origin;
  if (origin !== undefined && origin !== expected) return 'cross-origin form submission';
  if (origin === undefined) {
    const referer = c.req.header('referer');
    if (referer !== undefined && safeOrigin(referer) !== expected) return 'cross-origin form submission';
  }
  const cookie = getCookie(c, CSRF_COOKIE);
  if (!cookie || typeof submitted !== 'string') return 'missing CSRF token';
  const a = Buffer.from(cookie);
  const b = Buffer.from(submitted);
  if (a.length !== b.length || !timingSafeEqual(a, b)) return 'CSRF token mismatch';
  return undefined;
}

function safeOrigin(url: string): string | undefined {
  try {
    return new URL(url).origin;
  } catch {
    return undefined;
  }
}

/** A local path to come back to after signing in (never another site). */
/**
 * A path on this site to return to, or `/`. Browsers strip tabs and newlines and treat `\` as `/`
 * when they parse a Location, so `/\t/evil.example` would leave the site: only plain path
 * characters are accepted, and never two slashes in a row at the start.
 */
export function safeReturnTo(value: unknown): string {
  if (
    typeof value !== 'string' ||
    value.length > 500 ||
    !/^\/(?![/\\])[\x21-\x7e]*$/.test(value) ||
    value.includes('\\')
  )
    return '/';
  return value;
}

export function loginCookie(c: Context<AppEnv>, publicUrl: string, value: string | undefined): void {
  if (value === undefined) deleteCookie(c, LOGIN_COOKIE, { ...cookieOptions(publicUrl), path: '/login' });
  else setCookie(c, LOGIN_COOKIE, value, { ...cookieOptions(publicUrl, 600), path: '/login' });
}

export function readLoginCookie(c: Context<AppEnv>): string | undefined {
  return getCookie(c, LOGIN_COOKIE);
}
