/**
 * The closed lists both sides of the wire write: token scopes, how a token's holder
 * authenticated, and who can see a flake. The server's types (identity/principal.ts,
 * registry/service.ts) are these; the CLI and the web offer exactly these.
 */

export const SCOPES = ['read', 'write', 'publish', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

/** How a token's holder authenticated: a plain Floe token, a device token or a federated login. */
export const AUTH_METHODS = ['token', 'device', 'github', 'gitlab', 'aws', 'oidc'] as const;
export type AuthMethod = (typeof AUTH_METHODS)[number];

export const VISIBILITIES = ['public', 'unlisted', 'private'] as const;
export type Visibility = (typeof VISIBILITIES)[number];

/** Whether `s` is one of `list` (narrows it). */
export function isOneOf<T extends string>(list: readonly T[], s: string): s is T {
  return (list as readonly string[]).includes(s);
}
