/**
 * PURE: a trust spec (the JSON `POST /orgs/:org/trusts` takes) from `floe trust add` flags, so
 * nobody has to write JSON for the common cases. The server validates the result.
 */
import { CliError } from './errors.js';

export interface TrustFlags {
  provider?: string;
  ownerId?: string;
  repositoryId?: string[];
  namespaceId?: string;
  projectId?: string[];
  accountId?: string;
  arn?: string[];
  issuer?: string;
  clientId?: string;
  claim?: string[];
  ref?: string[];
  environment?: string[];
  scope: string;
  slice?: string;
  ttl?: string;
}

const list = (text: string) =>
  text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

function ttlSeconds(text: string): number {
  const m = /^(\d+)(s|m|h)$/.exec(text);
  if (!m) throw new CliError(`--ttl ${JSON.stringify(text)}: expected e.g. 30m or 2h`);
  return Number(m[1]) * { s: 1, m: 60, h: 3600 }[m[2] as 's' | 'm' | 'h'];
}

export function trustSpecFromFlags(f: TrustFlags): Record<string, unknown> {
  const common = {
    scopes: list(f.scope),
    ...(f.slice ? { slices: list(f.slice) } : {}),
    ...(f.ttl ? { ttlSeconds: ttlSeconds(f.ttl) } : {}),
    ...(f.issuer ? { issuer: f.issuer } : {}),
  };
  const need = (value: string | undefined, flag: string): string => {
    if (!value) throw new CliError(`--provider ${f.provider} needs ${flag}`);
    return value;
  };
  switch (f.provider) {
    case 'github':
      return {
        provider: 'github',
        ...common,
        ownerId: need(f.ownerId, '--owner-id (the numeric id of the user or organization)'),
        ...(f.repositoryId ? { repositoryIds: f.repositoryId } : {}),
        ...(f.ref ? { refs: f.ref } : {}),
        ...(f.environment ? { environments: f.environment } : {}),
      };
    case 'gitlab':
      return {
        provider: 'gitlab',
        ...common,
        namespaceId: need(f.namespaceId, '--namespace-id (the numeric id of the group or user)'),
        ...(f.projectId ? { projectIds: f.projectId } : {}),
        ...(f.ref ? { refs: f.ref } : {}),
      };
    case 'aws':
      if (!f.arn?.length)
        throw new CliError('--provider aws needs --arn <pattern...>, e.g. arn:aws:iam::123456789012:role/ci-*');
      return { provider: 'aws', ...common, accountId: need(f.accountId, '--account-id'), arnPatterns: f.arn };
    case 'oidc': {
      if (!f.claim?.length) throw new CliError('--provider oidc needs --claim name=value (at least one)');
      const claims: Record<string, string[]> = {};
      for (const c of f.claim) {
        const eq = c.indexOf('=');
        if (eq <= 0) throw new CliError(`--claim ${JSON.stringify(c)}: expected name=value`);
        (claims[c.slice(0, eq)] ??= []).push(c.slice(eq + 1));
      }
      return {
        provider: 'oidc',
        ...common,
        issuer: need(f.issuer, '--issuer'),
        ...(f.clientId ? { clientId: f.clientId } : {}),
        claims,
      };
    }
    default:
      throw new CliError(
        'give --spec JSON, or --provider github|gitlab|aws|oidc with its flags (see `floe trust add --help`)',
      );
  }
}
