/** `floe org create|set`, `floe usage`, `floe slice create|set|list`: an org and its cache slices. */
import { Option, type Command } from 'commander';
import { CliError, FloeApi, clientOptions } from '../client.js';
import { parsePriority } from '../sources.js';
import { orgAndArgs, orgOption, type CommandContext } from './context.js';
import { formatBytes } from '../../units.js';

type ServerOpts = { server?: string; org?: string; json?: boolean };

export function registerOrgCommands(program: Command, ctx: CommandContext): { org: Command; slice: Command } {
  const { out } = ctx;
  const api = (opts: ServerOpts) => new FloeApi(clientOptions(opts));

  const org = program.command('org').description('manage orgs');
  org
    .command('create <org>')
    .description('create an org (needs the server admin token in FLOE_TOKEN)')
    .addOption(ctx.serverOption())
    .option('--json', 'print JSON')
    .action(async (name: string, opts: ServerOpts) => {
      const res = await api(opts).createOrg(name);
      out(opts.json ? JSON.stringify(res) : `created org ${res.name} with slice ${res.slices.join(', ')}`);
    });
  org
    .command('set [org]')
    .description('retention (org admin) and quota (server admin) of an org')
    .addOption(ctx.serverOption())
    .addOption(orgOption())
    .option('--retention <duration>', 'pushes younger than this are GC roots, e.g. 30d; "forever" to keep every push')
    .option('--quota <size>', 'most deduplicated stored bytes, e.g. 50G; "none" for unlimited')
    .option('--json', 'print JSON')
    .action(async (arg: string | undefined, opts: ServerOpts & { retention?: string; quota?: string }) => {
      const [orgName] = orgAndArgs(opts.org, [arg], []);
      if (opts.retention === undefined && opts.quota === undefined)
        throw new CliError('say what to set: --retention and/or --quota');
      const res = await api(opts).orgSettings(orgName, {
        ...(opts.retention !== undefined ? { retention: opts.retention === 'forever' ? null : opts.retention } : {}),
        ...(opts.quota !== undefined ? { quota: opts.quota === 'none' ? null : opts.quota } : {}),
      });
      const retention = res.retentionSeconds === null ? 'forever' : `${res.retentionSeconds}s`;
      out(
        opts.json
          ? JSON.stringify(res)
          : `${orgName}: retention ${retention}, quota ${res.quotaBytes === null ? 'none' : formatBytes(res.quotaBytes)}`,
      );
    });

  program
    .command('usage [org]')
    .description(
      'storage used by an org and each of its slices: logical (sum of NAR sizes) and stored (distinct NARs, compressed)',
    )
    .addOption(ctx.serverOption())
    .addOption(orgOption())
    .option('--json', 'print JSON')
    .action(async (arg: string | undefined, opts: ServerOpts) => {
      const [orgName] = orgAndArgs(opts.org, [arg], []);
      const res = await api(opts).usage(orgName);
      if (opts.json) return out(JSON.stringify(res));
      const quota =
        res.quotaBytes !== null
          ? ` of ${formatBytes(res.quotaBytes)} quota (${Math.round((100 * res.storedBytes) / Math.max(res.quotaBytes, 1))}%)`
          : '';
      out(
        `${res.org}: ${res.paths} paths, ${formatBytes(res.logicalBytes)} logical, ${formatBytes(res.storedBytes)} stored${quota}`,
      );
      for (const sl of res.slices)
        out(
          `  ${sl.name}\t${sl.paths} paths\t${formatBytes(sl.logicalBytes)} logical\t${formatBytes(sl.storedBytes)} stored`,
        );
    });

  const slice = program.command('slice').description('manage cache slices of an org');
  slice
    .command('create [org] [slice]')
    .description('create a named cache slice (private unless --public)')
    .addOption(ctx.serverOption())
    .addOption(orgOption())
    .option('--public', 'anyone may read this slice')
    .option('--in-view', "also serve it on the org's unified /cache, after default (otherwise only at its own URL)")
    .option('--json', 'print JSON')
    .action(
      async (
        a: string | undefined,
        b: string | undefined,
        opts: ServerOpts & { public?: boolean; inView?: boolean },
      ) => {
        const [orgName, name] = orgAndArgs(opts.org, [a, b], ['slice']);
        const res = await api(opts).createSlice(orgName, {
          name: name!,
          public: Boolean(opts.public),
          inView: Boolean(opts.inView),
        });
        out(
          opts.json
            ? JSON.stringify(res)
            : `created ${res.public ? 'public' : 'private'} slice ${orgName}/${name}: ${res.url}`,
        );
      },
    );
  slice
    .command('set [org] [slice]')
    .description("change a slice's visibility, or its place in the org's unified view")
    .addOption(ctx.serverOption())
    .addOption(orgOption())
    .addOption(new Option('--visibility <v>', 'public or private').choices(['public', 'private']))
    .option('--in-view', "serve it on the org's unified /cache (after default, by priority)")
    .option('--no-in-view', 'serve it only at its own URL')
    .option('--priority <n>', "order among the org's slices in the view (lower first; default 100)")
    .action(
      async (
        a: string | undefined,
        b: string | undefined,
        opts: ServerOpts & { visibility?: string; inView?: boolean; priority?: string },
      ) => {
        const [orgName, name] = orgAndArgs(opts.org, [a, b], ['slice']);
        const body = {
          ...(opts.visibility ? { public: opts.visibility === 'public' } : {}),
          ...(opts.inView !== undefined ? { inView: opts.inView } : {}),
          ...(opts.priority !== undefined ? { priority: parsePriority(opts.priority) } : {}),
        };
        if (Object.keys(body).length === 0)
          throw new CliError('say what to change: --visibility, --in-view / --no-in-view or --priority');
        const res = await api(opts).setSlice(orgName, name!, body);
        out(
          `${orgName}/${name}: ${res.public ? 'public' : 'private'}, ${res.inView ? `in the org's view (priority ${res.priority})` : 'only at its own URL'}`,
        );
      },
    );
  slice
    .command('list [org]')
    .description("an org's slices: visibility, place in the view, URL")
    .addOption(ctx.serverOption())
    .addOption(orgOption())
    .option('--json', 'print JSON')
    .action(async (arg: string | undefined, opts: ServerOpts) => {
      const [orgName] = orgAndArgs(opts.org, [arg], []);
      const client = clientOptions(opts);
      const res = await new FloeApi(client).sources(orgName);
      const rows = res.slices.map((s) => ({ ...s, url: `${client.server}/cache/${orgName}/${s.name}` }));
      if (opts.json) return out(JSON.stringify(rows));
      for (const s of rows) {
        const place = s.inView ? `in view (priority ${s.priority})` : 'own URL only';
        out(`${s.name}\t${s.public ? 'public' : 'private'}\t${place}\t${s.url}`);
      }
    });

  slice
    .command('delete [org] [slice]')
    .description('delete an empty slice (`floe slice delete acme/staging`); its link trusts and follows go with it')
    .addOption(ctx.serverOption())
    .addOption(orgOption())
    .option('--force', "also remove the slice's paths, logs and realisations (GC then collects the blobs)")
    .option('--json', 'print JSON')
    .action(async (a: string | undefined, b: string | undefined, opts: ServerOpts & { force?: boolean }) => {
      // `<org>/<slice>` as one argument, like --slice elsewhere, or the org and the slice apart.
      const joined = !opts.org && a?.includes('/') && b === undefined ? a.split('/') : undefined;
      if (joined && joined.length !== 2) throw new CliError('expected <org>/<slice>');
      const [orgName, name] = joined ? [joined[0]!, joined[1]!] : orgAndArgs(opts.org, [a, b], ['slice']);
      type Answer = {
        deleted: boolean;
        paths: number;
        remaining?: number;
        uploads: number;
        trusts: number;
        follows: number;
      };
      // A huge slice is emptied over several requests (each batch committed on the server): ask
      // until it is gone, saying how far it got. Interrupted, the same command goes on from there.
      const client = api(opts);
      let removed = 0;
      let res: Answer;
      for (;;) {
        res = (await client.deleteSlice(orgName, name!, Boolean(opts.force))) as Answer;
        removed += res.paths;
        if (res.deleted !== false) break;
        ctx.err(`removed ${removed} path(s) of ${orgName}/${name}, ${res.remaining} left`);
      }
      res = { ...res, paths: removed };
      if (opts.json) return out(JSON.stringify(res));
      const paths = opts.force ? `${res.paths} path(s), ` : '';
      out(
        `deleted slice ${orgName}/${name} (${paths}${res.trusts} link trust(s), ${res.follows} follow(s), ${res.uploads} upload record(s) removed)`,
      );
    });

  return { org, slice };
}
