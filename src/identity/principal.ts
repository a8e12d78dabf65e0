/** Who is asking. Built once per request by the HTTP layer from a verified credential. */
export type Scope = 'read' | 'write' | 'publish' | 'admin';
export const SCOPES: readonly Scope[] = ['read', 'write', 'publish', 'admin'];

export interface OrgRef {
  id: string;
  name: string;
}

export type Principal =
  | { kind: 'anonymous' }
  | { kind: 'server-admin'; tokenId: string; subject: string }
  | {
      kind: 'token';
      tokenId: string;
      subject: string;
      org: OrgRef;
      scopes: ReadonlySet<Scope>;
      /** Slice names this token is limited to; null = every slice of the org. */
      slices: readonly string[] | null;
      /** Expiry, seconds since the epoch. */
      expiresAt?: number;
      /** The external identity this token was exchanged for (OIDC/CI login), if any. */
      identity?: { provider: string; issuer: string; claims: Record<string, string | string[]> };
    };

export const ANONYMOUS: Principal = { kind: 'anonymous' };

export function describePrincipal(p: Principal): string {
  switch (p.kind) {
    case 'anonymous':
      return 'anonymous';
    case 'server-admin':
      return `server-admin:${p.subject}`;
    case 'token':
      return `${p.org.name}:${p.subject}`;
  }
}
