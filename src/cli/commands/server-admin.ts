/** Server admin: `floe upstream add|list|remove` and `floe gc`. */
import type { Command } from 'commander';
import { FloeApi, clientOptions } from '../client.js';
import type { CommandContext } from './context.js';
import { formatBytes } from '../../units.js';

type Opts = { server?: string; json?: boolean };

export function registerServerAdminCommands(program: Command, ctx: CommandContext): void {
  const { out } = ctx;
  const upstream = program
    .command('upstream')
    .description('upstream binary caches the server mirrors verified paths from (server admin)');
  upstream
    .command('add <name> <url>')
    .description('trust an upstream cache: pushes then skip uploading paths it serves, signed by one of the keys')
    .addOption(ctx.serverOption())
    .requiredOption(
      '--key <name:base64...>',
      'public key(s) trusted for this upstream, as in nix.conf trusted-public-keys',
    )
    .option('--pull-through', 'also fill the cache from this upstream on a narinfo miss')
    .option('--priority <n>', 'lower is asked first (default 50)')
    .option('--json', 'print JSON')
    .action(
      async (name: string, url: string, opts: Opts & { key: string[]; pullThrough?: boolean; priority?: string }) => {
        const res = await new FloeApi(clientOptions(opts)).addUpstream({
          name,
          url,
          publicKeys: opts.key,
          pullThrough: Boolean(opts.pullThrough),
          ...(opts.priority ? { priority: Number(opts.priority) } : {}),
        });
        out(opts.json ? JSON.stringify(res) : `added upstream ${res.name} (${res.url})`);
      },
    );
  upstream
    .command('list')
    .addOption(ctx.serverOption())
    .option('--json', 'print JSON')
    .action(async (opts: Opts) => {
      const res = await new FloeApi(clientOptions(opts)).upstreams();
      if (opts.json) return out(JSON.stringify(res));
      for (const u of res.upstreams)
        out(
          `${u.name}\t${u.url}\tpriority ${u.priority}${u.pullThrough ? '\tpull-through' : ''}\t${u.publicKeys.join(' ')}`,
        );
    });
  upstream
    .command('remove <name>')
    .addOption(ctx.serverOption())
    .action(async (name: string, opts: Opts) => {
      await new FloeApi(clientOptions(opts)).removeUpstream(name);
      out(`removed upstream ${name} (paths already mirrored stay)`);
    });

  program
    .command('gc')
    .description(
      'garbage-collect the server: keep what releases, pins and recent pushes reach; reclaim the rest (server admin)',
    )
    .addOption(ctx.serverOption())
    .option('--dry-run', 'report what would be removed, remove nothing')
    .option('--grace <duration>', "nothing younger than this is removed (default: the server's FLOE_GC_GRACE, 1h)")
    .option('--json', 'print JSON')
    .action(async (opts: Opts & { dryRun?: boolean; grace?: string }) => {
      const r = await new FloeApi(clientOptions(opts)).gc({
        dryRun: Boolean(opts.dryRun),
        ...(opts.grace ? { grace: opts.grace } : {}),
      });
      if (opts.json) return out(JSON.stringify(r));
      const verb = r.dryRun ? 'would remove' : 'removed';
      out(
        `${r.roots} roots; ${r.paths.kept} of ${r.paths.total} path rows kept; ${verb} ${r.paths.collected} path rows (${formatBytes(r.paths.logicalBytes)} logical)`,
      );
      out(
        `${verb} ${r.nars.collected} NARs (${formatBytes(r.nars.storedBytes)} stored) and ${r.orphanBlobs.collected} orphan blobs (${formatBytes(r.orphanBlobs.bytes)})`,
      );
      if (!r.dryRun)
        out(
          `expired: ${r.expired.narUploads} upload records, ${r.expired.releaseUploads} staged releases, ${r.expired.pins} pins`,
        );
      for (const line of r.sample) out(`  ${line}`);
    });
}
