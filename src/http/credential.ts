/** The credential of a request, shared by the Hono app and the /cache handler. */
import { Unauthenticated } from '../errors.js';
import { parseAuthorization } from '../identity/credentials.js';

export const TOKEN_IN_USER_NAME =
  'the token was sent as the Basic user name with no password: put it in the password field (netrc: "machine HOST password TOKEN", any login), or send "Authorization: Bearer TOKEN"';

/** The bearer credential, undefined when none was sent; a token misplaced in the user name is a 401, not anonymous. */
export function requestCredential(header: string | undefined): string | undefined {
  const r = parseAuthorization(header);
  if (r.kind === 'token-in-user-name') throw new Unauthenticated(TOKEN_IN_USER_NAME);
  return r.kind === 'credential' ? r.credential : undefined;
}
