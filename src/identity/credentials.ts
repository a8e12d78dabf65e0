/**
 * Extracts a bearer credential from an Authorization header. Pure; never throws.
 * Nix sends netrc credentials as Basic auth with any user name (often empty or the literal `""`)
 * and the token as password; Floe's own clients may send `Bearer <token>`.
 */
export function credentialFromAuthorization(header: string | undefined | null): string | undefined {
  if (!header) return undefined;
  const space = header.indexOf(' ');
  if (space <= 0) return undefined;
  const scheme = header.slice(0, space).toLowerCase();
  const value = header.slice(space + 1).trim();
  if (scheme === 'bearer') return value || undefined;
  if (scheme === 'basic') {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return undefined;
    const password = decoded.slice(colon + 1);
    return password || undefined;
  }
  return undefined;
}
