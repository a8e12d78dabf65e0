/**
 * Extracts a bearer credential from an Authorization header. Pure; never throws.
 * Nix sends netrc credentials as Basic auth with any user name (often empty or the literal `""`)
 * and the token as password; Floe's own clients may send `Bearer <token>`.
 *
 * A token in the Basic *user name* with no password (netrc `login <token>` without `password`)
 * is its own result, so callers answer 401 saying where the token goes instead of treating the
 * request as anonymous (which looks like "the token has no access").
 */
export type AuthorizationCredential =
  | { kind: 'none' }
  | { kind: 'credential'; credential: string }
  | { kind: 'token-in-user-name' };

/** Floe tokens, and JWTs (CI identity tokens, exchanged on the fly on the publishing paths). */
const TOKEN_LIKE = /^(floe_\S+|[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})$/;

export function parseAuthorization(header: string | undefined | null): AuthorizationCredential {
  const none = { kind: 'none' } as const;
  if (!header) return none;
  const space = header.indexOf(' ');
  if (space <= 0) return none;
  const scheme = header.slice(0, space).toLowerCase();
  const value = header.slice(space + 1).trim();
  if (scheme === 'bearer') return value ? { kind: 'credential', credential: value } : none;
  if (scheme === 'basic') {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const user = colon < 0 ? decoded : decoded.slice(0, colon);
    const password = colon < 0 ? '' : decoded.slice(colon + 1);
    if (password) return { kind: 'credential', credential: password };
    return TOKEN_LIKE.test(user.trim()) ? { kind: 'token-in-user-name' } : none;
  }
  return none;
}
