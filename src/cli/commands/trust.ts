/** `floe trust add|list|remove`: which CI and IdP identities belong to an org. */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { CliError, FloeApi, clientOptions } from '../client.js';
import { trustSpecFromFlags, type TrustFlags } from '../trust-spec.js';
import { orgAndArgs, orgOption, type CommandContext } from './context.js';

type Opts = { server?: string; org?: string };

export function registerTrustCommands(program: Command, ctx: CommandContext): { trust: Command } {
  const { out } = ctx;
  const trust = program.command('trust').description('declare which CI and IdP identities belong to an org');
  trust
    .command('add [org]')
    .description(
      'add a trust from flags (--provider github --owner-id 123 --ref refs/heads/main --scope read,write) or a JSON --spec',
    )
    .addOption(ctx.serverOption())
    .addOption(orgOption())
    .option('--spec <json-or-@file>', 'the trust as JSON, or @path to a JSON file')
    .option('--provider <p>', 'github, gitlab, aws or oidc')
    .option('--owner-id <id>', 'github: numeric id of the owning user or organization')
    .option('--repository-id <ids...>', 'github: only these repositories (numeric ids)')
    .option('--environment <names...>', 'github: only jobs in these environments')
    .option('--namespace-id <id>', 'gitlab: numeric id of the group or user')
    .option('--project-id <ids...>', 'gitlab: only these projects (numeric ids)')
    .option('--ref <refs...>', 'github/gitlab: only these refs, e.g. refs/heads/main')
    .option('--account-id <id>', 'aws: the 12-digit account')
    .option('--arn <patterns...>', 'aws: role/user ARN patterns ("*" within a segment)')
    .option('--issuer <url>', 'oidc: the issuer (github/gitlab: a self-hosted instance)')
    .option('--client-id <id>', "oidc: the Floe CLI's client id there (enables `floe login oidc`)")
    .option('--claim <name=value...>', 'oidc: claims the ID token must carry')
    .option('--scope <scopes>', 'comma-separated scopes of the tokens it mints', 'read')
    .option('--slice <slices>', 'comma-separated slices the tokens are limited to')
    .option('--ttl <duration>', 'lifetime of the tokens it mints, e.g. 30m (at most 12h)')
    .action(async (arg: string | undefined, opts: Opts & TrustFlags & { spec?: string }) => {
      const [orgName] = orgAndArgs(opts.org, [arg], []);
      let spec: unknown;
      if (opts.spec) {
        const text = opts.spec.startsWith('@') ? await readFile(opts.spec.slice(1), 'utf8') : opts.spec;
        try {
          spec = JSON.parse(text);
        } catch {
          throw new CliError('--spec is not valid JSON');
        }
      } else {
        spec = trustSpecFromFlags(opts);
      }
      const res = await new FloeApi(clientOptions(opts)).addTrust(orgName, spec);
      if (res.status === 'pending')
        out(`trust ${res.id} is pending: ${res.message ?? 'it waits for the server admin'}`);
      else out(`added trust ${res.id}: tokens from ${res.issuer} with audience ${res.audience}`);
    });
  trust
    .command('list [org]')
    .addOption(ctx.serverOption())
    .addOption(orgOption())
    .action(async (arg: string | undefined, opts: Opts) => {
      const [orgName] = orgAndArgs(opts.org, [arg], []);
      const res = await new FloeApi(clientOptions(opts)).trusts(orgName);
      out(JSON.stringify(res.trusts, null, 2));
    });
  trust
    .command('remove [org] [id]')
    .addOption(ctx.serverOption())
    .addOption(orgOption())
    .action(async (a: string | undefined, b: string | undefined, opts: Opts) => {
      const [orgName, id] = orgAndArgs(opts.org, [a, b], ['id']);
      await new FloeApi(clientOptions(opts)).removeTrust(orgName, id!);
      out(`removed trust ${id}`);
    });
  return { trust };
}
