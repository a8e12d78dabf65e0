/** `floe pin add|list|remove`: named GC roots of an org. */
import type { Command } from 'commander';
import { FloeApi, clientOptions } from '../client.js';
import { orgAndArgs, orgOption, type CommandContext } from './context.js';

type Opts = { server?: string; org?: string; json?: boolean };

export function registerPinCommands(program: Command, ctx: CommandContext): void {
  const { out } = ctx;
  const pin = program.command('pin').description('named GC roots of an org');
  pin
    .command('add [org] [name] [store-path]')
    .description('keep a store path and its closure in every slice of the org that holds it')
    .addOption(ctx.serverOption())
    .addOption(orgOption())
    .option('--ttl <duration>', 'the pin expires after this long (e.g. 90d); default: never')
    .option('--json', 'print JSON')
    .action(
      async (a: string | undefined, b: string | undefined, c: string | undefined, opts: Opts & { ttl?: string }) => {
        const [orgName, name, storePath] = orgAndArgs(opts.org, [a, b, c], ['name', 'store-path']);
        const res = await new FloeApi(clientOptions(opts)).addPin(orgName, {
          name: name!,
          storePath: storePath!,
          ...(opts.ttl ? { ttl: opts.ttl } : {}),
        });
        out(
          opts.json
            ? JSON.stringify(res)
            : `pinned ${res.storePath} as ${orgName}/${res.name}${res.expiresAt ? ` until ${res.expiresAt}` : ''}`,
        );
      },
    );
  pin
    .command('list [org]')
    .addOption(ctx.serverOption())
    .addOption(orgOption())
    .option('--json', 'print JSON')
    .action(async (arg: string | undefined, opts: Opts) => {
      const [orgName] = orgAndArgs(opts.org, [arg], []);
      const res = await new FloeApi(clientOptions(opts)).pins(orgName);
      if (opts.json) return out(JSON.stringify(res));
      for (const p of res.pins) out(`${p.name}\t${p.storePath}\t${p.expiresAt ?? 'no expiry'}`);
    });
  pin
    .command('remove [org] [name]')
    .addOption(ctx.serverOption())
    .addOption(orgOption())
    .action(async (a: string | undefined, b: string | undefined, opts: Opts) => {
      const [orgName, name] = orgAndArgs(opts.org, [a, b], ['name']);
      await new FloeApi(clientOptions(opts)).removePin(orgName, name!);
      out(`removed pin ${orgName}/${name}`);
    });
}
