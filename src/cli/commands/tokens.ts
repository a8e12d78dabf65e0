/** `floe token create|revoke|list` and `floe keys rotate`. */
import type { Command } from 'commander';
import { CliError, FloeApi, clientOptions, readCliConfig } from '../client.js';
import type { CommandContext } from './context.js';
import { SCOPES, isOneOf } from '../../wire/access.js';

const list = (text: string) =>
  text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

interface CreateOpts {
  server?: string;
  org?: string;
  scope: string;
  slice?: string;
  ttl: string;
  subject?: string;
  description?: string;
  deploy?: string[];
  cidr?: string;
  country?: string;
  json?: boolean;
}

export function registerTokenCommands(program: Command, ctx: CommandContext): { keys: Command } {
  const { out } = ctx;
  const orgOf = (org: string | undefined) => {
    const o = org ?? readCliConfig().org;
    if (!o) throw new CliError('which org? pass --org <org>');
    return o;
  };
  const token = program.command('token').description('manage Floe tokens');
  token
    .command('create')
    .description('mint a token; prints it alone on stdout')
    .addOption(ctx.serverOption())
    .option('--org <org>', 'org the token belongs to (default: the one `floe login` saved)')
    .option('--scope <scopes>', 'comma-separated: read, write, publish, admin', 'read')
    .option('--slice <slices>', 'comma-separated slice names to limit the token to')
    .option('--ttl <duration>', 'lifetime, e.g. 30m, 1h, 7d', '24h')
    .option('--subject <name>', 'who or what the token is for (shown in logs; default: its creator and purpose)')
    .option('--description <text>', 'free-form note')
    .option(
      '--deploy <outputs...>',
      'deploy-only device token: reads exactly the closures of these outputs, e.g. acme/ethercalc/*#nixosConfigurations.web',
    )
    .option('--cidr <cidrs>', 'comma-separated addresses/CIDRs the token may be used from')
    .option('--country <codes>', 'comma-separated ISO country codes the token may be used from')
    .option('--json', 'print JSON with id and expiry')
    .action(async (opts: CreateOpts) => {
      const asked = list(opts.scope);
      const bad = asked.filter((s) => !isOneOf(SCOPES, s));
      if (bad.length) throw new CliError(`unknown scope ${bad.join(', ')}: use ${SCOPES.join(', ')}`);
      const scopes = asked.filter((s) => isOneOf(SCOPES, s));
      const res = await new FloeApi(clientOptions(opts)).createToken({
        org: orgOf(opts.org),
        scopes,
        ...(opts.slice ? { slices: list(opts.slice) } : {}),
        ttl: opts.ttl,
        ...(opts.subject ? { subject: opts.subject } : {}),
        ...(opts.description ? { description: opts.description } : {}),
        ...(opts.deploy ? { deploy: opts.deploy } : {}),
        ...(opts.cidr ? { cidrs: list(opts.cidr) } : {}),
        ...(opts.country ? { countries: list(opts.country) } : {}),
      });
      out(opts.json ? JSON.stringify(res) : res.token);
    });
  token
    .command('revoke [id]')
    .description('revoke a token by id (see `token create --json`), or every token of a subject')
    .addOption(ctx.serverOption())
    .option('--org <org>', 'with --subject: the org')
    .option('--subject <subject>', 'revoke every active token of this subject (e.g. a CI identity)')
    .action(async (id: string | undefined, opts: { server?: string; org?: string; subject?: string }) => {
      const api = new FloeApi(clientOptions(opts));
      if (opts.subject) {
        if (!opts.org) throw new CliError('--subject needs --org');
        const res = await api.revokeSubject(opts.org, opts.subject);
        return out(`revoked ${res.revoked} token(s) of ${opts.subject}`);
      }
      if (!id) throw new CliError('give a token id, or --org ORG --subject SUBJECT');
      await api.revokeToken(id);
      out(`revoked ${id}`);
    });
  token
    .command('list')
    .description("list an org's active tokens (ids, subjects, scopes, expiry; never the tokens)")
    .addOption(ctx.serverOption())
    .option('--org <org>', 'org (default: the one `floe login` saved)')
    .option('--subject <subject>', 'only this subject')
    .option('--all', 'include expired and revoked tokens')
    .option('--json', 'print JSON')
    .action(async (opts: { server?: string; org?: string; subject?: string; all?: boolean; json?: boolean }) => {
      const q = new URLSearchParams({
        ...(opts.subject ? { subject: opts.subject } : {}),
        ...(opts.all ? { all: '1' } : {}),
      });
      const res = await new FloeApi(clientOptions(opts)).tokens(orgOf(opts.org), q);
      if (opts.json) return out(JSON.stringify(res.tokens));
      for (const t of res.tokens)
        out(
          `${t.id}  ${t.subject}  ${t.scopes.join(',')}  expires ${t.expiresAt}${t.revokedAt ? `  revoked ${t.revokedAt}` : ''}`,
        );
    });

  const keys = program.command('keys').description("the server's token keys and each org's Nix signing keys");
  keys
    .command('rotate')
    .description(
      "rotate an org's Nix signing key (--org, org admin: the old key keeps signing until retired), or the server's token key (server admin)",
    )
    .addOption(ctx.serverOption())
    .option('--org <org>', "rotate this org's Nix signing key")
    .action(async (opts: { server?: string; org?: string }) => {
      const api = new FloeApi(clientOptions(opts));
      if (opts.org) {
        const res = await api.rotateOrgKey(opts.org);
        out(`new signing key ${res.active.name} for ${opts.org}; ${res.resigned} narinfos re-signed with both keys`);
        out(`trust: ${res.keys.join(' ')}`);
        out(`once every machine trusts ${res.active.name}: floe keys retire --org ${opts.org} <old key name>`);
        return;
      }
      const res = await api.rotateServerKey();
      out(`new signing key ${res.kid}; older keys keep verifying the tokens they signed`);
    });
  return { keys };
}
