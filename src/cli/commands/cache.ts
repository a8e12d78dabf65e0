/** `floe cache info|use`: the nix.conf lines that use this cache. */
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { CliError, FloeApi, clientOptions, nixConfigDir } from '../client.js';
import { systemConfDir, writeAtomic } from '../login.js';
import { upsertNixConfBlock } from '../netrc.js';
import { DAEMON_SOCKET, adminInstructions, cacheConfLines, existingNetrcFile, nixMode } from '../nix-setup.js';
import type { CommandContext } from './context.js';

async function readOrEmpty(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw err;
  }
}

export function registerCacheCommands(program: Command, ctx: CommandContext): void {
  const cache = program.command('cache').description('binary cache');
  cache
    .command('info')
    .description('print the nix.conf lines that use this cache')
    .addOption(ctx.serverOption())
    .option('--org <org>', "an org's keys instead of those of your token's view")
    .option('--json', 'print JSON')
    .action(async (opts: { server?: string; json?: boolean; org?: string }) => {
      const res = await new FloeApi(clientOptions(opts)).cacheInfo(opts.org);
      ctx.io.stdout.write(opts.json ? `${JSON.stringify(res)}\n` : res.nixConf);
    });

  cache
    .command('use')
    .description('add this cache to nix.conf (substituter + trusted key); `floe login` also adds the netrc')
    .addOption(ctx.serverOption())
    .option('--nix-conf <file>', 'nix.conf to update (default: $XDG_CONFIG_HOME/nix/nix.conf)')
    .option('--system', "multi-user Nix (as root): the nix-daemon's configuration (a managed include in /etc/nix)")
    .option('--print', 'print the lines instead')
    .option('--org <org>', "trust an org's keys instead of those of your token's view")
    .action(async (opts: { server?: string; nixConf?: string; system?: boolean; print?: boolean; org?: string }) => {
      const client = clientOptions(opts);
      const info = await new FloeApi(client).cacheInfo(opts.org, Boolean(opts.org));
      if (!info.publicKey)
        throw new CliError(
          'no keys to trust: your view holds no slice; log in first (floe login), or name an org with --org',
        );
      const lines = cacheConfLines(info, undefined);
      if (opts.print) return ctx.out(lines.join('\n'));
      const host = new URL(client.server).hostname;
      const root = process.getuid?.() === 0;
      if (opts.system) {
        if (!root) throw new CliError(`--system writes ${systemConfDir()} for the nix-daemon: run it as root (sudo)`);
        const include = path.join(systemConfDir(), `floe-${host}.conf`);
        // Keep the netrc-file line a `floe login --system` wrote into the same include.
        const netrcLine = /^netrc-file = .*$/m.exec(await readOrEmpty(include))?.[0];
        await writeAtomic(
          include,
          `# managed by floe login --system; floe logout --system removes it\n${[...lines, ...(netrcLine ? [netrcLine] : [])].join('\n')}\n`,
          0o644,
        );
        const conf = path.join(systemConfDir(), 'nix.conf');
        await writeAtomic(
          conf,
          upsertNixConfBlock(await readOrEmpty(conf), host, [`!include ${path.basename(include)}`]),
          0o644,
        );
        ctx.err(
          `floe: ${info.substituter} added to ${include}; restart the nix-daemon for it to apply (nothing was restarted)`,
        );
        return;
      }
      const file = path.resolve(opts.nixConf ?? path.join(nixConfigDir(), 'nix.conf'));
      const current = await readOrEmpty(file);
      // Keep a netrc-file line a previous `floe login` wrote into the same block.
      const netrcLine = new RegExp(`# >>> floe ${host.replace(/[.]/g, '\\.')} [\\s\\S]*?(netrc-file = .*)`).exec(
        current,
      )?.[1];
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, upsertNixConfBlock(current, host, netrcLine ? [...lines, netrcLine] : lines));
      ctx.err(`floe: ${info.substituter} added to ${file}`);
      const socket = process.env.NIX_DAEMON_SOCKET_PATH || DAEMON_SOCKET;
      if (nixMode(process.env, socket, existsSync(socket)).multiUser && !root) {
        const systemConf = await readOrEmpty(path.join(systemConfDir(), 'nix.conf'));
        const text = adminInstructions({
          c: info,
          host,
          confDir: systemConfDir(),
          netrcFile: existingNetrcFile(systemConf, host),
          user: os.userInfo().username,
          loginCommand: `floe cache use${opts.org ? ` --org ${opts.org}` : ''}`,
        });
        ctx.err(`floe: ${text.replace(/\n/g, '\nfloe: ')}`);
      }
    });
}
