/**
 * `floe follow`, `floe slice trust|untrust|global|sources`, `floe keys list|retire --org` and
 * `floe trust pending|approve`: the sources an org's view consults, the slices a slice takes
 * references from, the org's Nix keys and the server admin's approval of overlapping trusts.
 * Thin API calls.
 */
import type { OrgSources } from '../wire/slices.js';
import type { Command } from 'commander';
import { CliError, apiRequest, clientOptions } from './client.js';
import { type CommandContext, orgAndArgs, orgOption } from './commands/context.js';

type ServerOpts = { server?: string; org?: string };

export function parsePriority(text: string): number {
  const n = Number(text);
  if (!/^\d{1,7}$/.test(text) || n > 1_000_000)
    throw new CliError(`--priority ${JSON.stringify(text)}: expected an integer from 0 to 1000000`);
  return n;
}

function sourceArg(text: string): { org: string; slice: string } {
  const m = /^([^/]+)\/([^/]+)$/.exec(text);
  if (!m) throw new CliError(`${JSON.stringify(text)}: expected <org>/<slice>`);
  return { org: m[1]!, slice: m[2]! };
}

const enc = encodeURIComponent;

export function registerSourceCommands(
  program: Command,
  ctx: CommandContext,
  parts: { keys: Command; trust: Command; slice: Command },
): void {
  const { serverOption } = ctx;

  const follow = program
    .command('follow')
    .description("other orgs' slices an org's members substitute from, after the org's own");
  follow
    .command('add [org] [source]')
    .addOption(orgOption())
    .description(
      "add another org's slice (<org>/<slice>, public or shared with you) to the org's view; its paths are signed with that org's key",
    )
    .addOption(serverOption())
    .option('--priority <n>', 'order among followed slices (lower first; default 100)')
    .action(async (a: string | undefined, b: string | undefined, opts: ServerOpts & { priority?: string }) => {
      const [orgName, source] = orgAndArgs(opts.org, [a, b], ['source']) as [string, string];
      const res = await apiRequest<{ priority: number }>(
        clientOptions(opts),
        'POST',
        `/api/v1/orgs/${enc(orgName)}/follows`,
        {
          ...sourceArg(source),
          ...(opts.priority !== undefined ? { priority: parsePriority(opts.priority) } : {}),
        },
      );
      ctx.out(
        `${orgName} follows ${source} (priority ${res.priority}); run "floe cache use" again on machines to trust its key`,
      );
    });
  follow
    .command('remove [org] [source]')
    .addOption(orgOption())
    .addOption(serverOption())
    .action(async (a: string | undefined, b: string | undefined, opts: ServerOpts) => {
      const [orgName, source] = orgAndArgs(opts.org, [a, b], ['source']) as [string, string];
      const { org, slice } = sourceArg(source);
      await apiRequest(clientOptions(opts), 'DELETE', `/api/v1/orgs/${enc(orgName)}/follows/${enc(org)}/${enc(slice)}`);
      ctx.out(`${orgName} no longer follows ${source}`);
    });

  parts.slice
    .command('sources [org]')
    .addOption(orgOption())
    .description("what the org's unified view consults, in order, and which slices each slice takes references from")
    .addOption(serverOption())
    .option('--json', 'print JSON')
    .action(async (a: string | undefined, opts: ServerOpts & { json?: boolean }) => {
      const [orgName] = orgAndArgs(opts.org, [a], []);
      const res = await apiRequest<OrgSources>(clientOptions(opts), 'GET', `/api/v1/orgs/${enc(orgName)}/sources`);
      if (opts.json) return ctx.out(JSON.stringify(res));
      const inView = res.slices
        .filter((s) => s.inView)
        .sort((a, b) => a.priority - b.priority || a.name.localeCompare(b.name));
      ctx.out(`view of ${orgName} on /cache (a slice-limited token sees its slices first):`);
      for (const s of inView)
        ctx.out(`  ${orgName}/${s.name}${s.name === 'default' ? '' : ` (priority ${s.priority})`}`);
      for (const f of res.follows) ctx.out(`  ${f.org}/${f.slice} (followed, priority ${f.priority})`);
      const outside = res.slices.filter((s) => !s.inView);
      if (outside.length) ctx.out(`only at their own URL: ${outside.map((s) => s.name).join(', ')}`);
      for (const s of res.slices) {
        const from = s.name === 'default' ? s.trusts : ['default', ...s.trusts];
        ctx.out(
          `${orgName}/${s.name} takes references from: ${from.length ? from.join(', ') : 'nothing but uploads'}${s.globalPriority !== null ? `; served to everyone (global priority ${s.globalPriority})` : ''}`,
        );
      }
    });
  parts.slice
    .command('trust [org] [slice]')
    .addOption(orgOption())
    .description(
      'let <slice> take references from another slice of the org without an upload (every slice takes them from default)',
    )
    .addOption(serverOption())
    .requiredOption('--from <slice>', 'the slice whose paths may be linked in')
    .action(async (a: string | undefined, b: string | undefined, opts: ServerOpts & { from: string }) => {
      const [orgName, name] = orgAndArgs(opts.org, [a, b], ['slice']) as [string, string];
      await apiRequest(clientOptions(opts), 'POST', `/api/v1/orgs/${enc(orgName)}/slices/${enc(name)}/trusts`, {
        from: opts.from,
      });
      ctx.out(`${orgName}/${name} now takes references from ${orgName}/${opts.from}`);
    });
  parts.slice
    .command('untrust [org] [slice]')
    .addOption(orgOption())
    .addOption(serverOption())
    .requiredOption('--from <slice>', 'the slice to stop taking references from')
    .action(async (a: string | undefined, b: string | undefined, opts: ServerOpts & { from: string }) => {
      const [orgName, name] = orgAndArgs(opts.org, [a, b], ['slice']) as [string, string];
      await apiRequest(
        clientOptions(opts),
        'DELETE',
        `/api/v1/orgs/${enc(orgName)}/slices/${enc(name)}/trusts/${enc(opts.from)}`,
      );
      ctx.out(`${orgName}/${name} no longer takes references from ${orgName}/${opts.from}`);
    });
  parts.slice
    .command('global [org] [slice]')
    .addOption(orgOption())
    .description('serve a public slice to anonymous callers on /cache (server admin); nothing is, by default')
    .addOption(serverOption())
    .option('--priority <n>', 'order among global slices (lower first)')
    .option('--off', 'stop serving it on /cache (it still answers at its own URL)')
    .action(
      async (a: string | undefined, b: string | undefined, opts: ServerOpts & { priority?: string; off?: boolean }) => {
        const [orgName, name] = orgAndArgs(opts.org, [a, b], ['slice']) as [string, string];
        if (!opts.off && opts.priority === undefined) throw new CliError('give --priority <n>, or --off');
        await apiRequest(clientOptions(opts), 'PUT', `/api/v1/orgs/${enc(orgName)}/slices/${enc(name)}/global`, {
          priority: opts.off ? null : parsePriority(opts.priority!),
        });
        ctx.out(
          opts.off
            ? `${orgName}/${name} is no longer served on /cache to everyone`
            : `${orgName}/${name} is served on /cache to everyone`,
        );
      },
    );

  parts.keys
    .command('list')
    .description("an org's Nix signing keys: active, previous (still signing), retired")
    .addOption(serverOption())
    .requiredOption('--org <org>', 'the org')
    .option('--json', 'print JSON')
    .action(async (opts: ServerOpts & { org: string; json?: boolean }) => {
      const res = await apiRequest<{
        keys: Array<{ name: string; publicKey: string; state: string; createdAt: string }>;
      }>(clientOptions(opts), 'GET', `/api/v1/orgs/${enc(opts.org)}/keys`);
      if (opts.json) return ctx.out(JSON.stringify(res.keys));
      for (const k of res.keys) ctx.out(`${k.state.padEnd(8)} ${k.publicKey}  (since ${k.createdAt})`);
    });
  parts.keys
    .command('retire <name>')
    .description(
      'stop signing with a previous key of an org (after a rotation, or the server key of an upgraded installation)',
    )
    .addOption(serverOption())
    .requiredOption('--org <org>', 'the org')
    .action(async (name: string, opts: ServerOpts & { org: string }) => {
      const res = await apiRequest<{ resigned: number; keys: string[] }>(
        clientOptions(opts),
        'POST',
        `/api/v1/orgs/${enc(opts.org)}/keys/${enc(name)}/retire`,
      );
      ctx.out(
        `retired ${name}; ${res.resigned} narinfos re-signed; ${opts.org} is now signed by: ${res.keys.join(' ')}`,
      );
    });

  parts.trust
    .command('pending')
    .description("trusts that overlap another org's and wait for approval (server admin)")
    .addOption(serverOption())
    .action(async (opts: ServerOpts) => {
      const res = await apiRequest<{ trusts: unknown[] }>(clientOptions(opts), 'GET', '/api/v1/trusts/pending');
      ctx.out(JSON.stringify(res.trusts, null, 2));
    });
  parts.trust
    .command('approve <id>')
    .description(
      "approve a trust that overlaps another org's (server admin): logins of that identity must then name their org",
    )
    .addOption(serverOption())
    .action(async (id: string, opts: ServerOpts) => {
      const res = await apiRequest<{ org: string }>(clientOptions(opts), 'POST', `/api/v1/trusts/${enc(id)}/approve`);
      ctx.out(`approved trust ${id} of ${res.org}`);
    });
}
