/** `floe push`: upload closures; only what the cache lacks is sent. */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { CliError, CliExit, clientOptions } from '../client.js';
import { closureOf, push, pushSummary } from '../push.js';
import { pushLogs } from '../push-logs.js';
import type { CommandContext } from './context.js';

export function registerPushCommand(program: Command, ctx: CommandContext): void {
  program
    .command('push [paths...]')
    .description('upload the closures of store paths (or ./result links) to the cache; only what is missing is sent')
    .addOption(ctx.serverOption())
    .option('--slice <org/slice>', "upload to this slice (default: the token's)")
    .option('-j, --jobs <n>', 'parallel uploads', '4')
    .option(
      '--build-json <file>',
      'also push every output listed in `nix build --json` output ("-" for stdin): the CI mode',
    )
    .option('--json', 'print a JSON summary')
    .option('--logs', 'also upload the local build logs of the derivations behind the closure (read by `nix log`)')
    .action(
      async (
        paths: string[],
        opts: { server?: string; slice?: string; jobs: string; json?: boolean; buildJson?: string; logs?: boolean },
      ) => {
        if (opts.buildJson) {
          let built: unknown;
          try {
            built = JSON.parse(opts.buildJson === '-' ? await ctx.readStdin() : await readFile(opts.buildJson, 'utf8'));
          } catch {
            throw new CliError(`--build-json: ${opts.buildJson} is not the JSON that \`nix build --json\` prints`);
          }
          const entries = Array.isArray(built) ? (built as Array<{ outputs?: Record<string, string> }>) : [];
          for (const entry of entries) paths.push(...Object.values(entry.outputs ?? {}));
        }
        if (paths.length === 0) throw new CliError('nothing to push: give store paths, ./result links or --build-json');
        const jobs = Number(opts.jobs);
        if (!Number.isInteger(jobs) || jobs < 1 || jobs > 64) throw new CliError('--jobs must be between 1 and 64');
        if (opts.slice && !/^[a-z0-9][a-z0-9_-]*\/[a-z0-9][a-z0-9_-]*$/.test(opts.slice))
          throw new CliError('--slice must look like org/slice');
        const stderr = ctx.io.stderr;
        const tty = Boolean(stderr.isTTY);
        const result = await push(clientOptions(opts), paths, {
          ...(opts.slice ? { slice: opts.slice } : {}),
          jobs,
          progressIntervalMs: progressInterval(tty, process.env),
          progress: (line, final) => {
            if (tty && !final) stderr.write(`\r\x1b[K${line.slice(0, (stderr.columns ?? 120) - 1)}`);
            else stderr.write(`${tty ? '\r\x1b[K' : ''}floe push: ${line}\n`);
          },
        });
        if (tty) stderr.write('\r\x1b[K');
        const logs = opts.logs
          ? await pushLogs(clientOptions(opts), await closureOf(paths), {
              ...(opts.slice ? { slice: opts.slice } : {}),
              progress: (l) => ctx.err(`floe push: ${l}`),
            })
          : undefined;
        if (opts.json) ctx.out(JSON.stringify(logs ? { ...result, logs } : result));
        else ctx.err(`floe push: ${pushSummary(result)}`);
        if (result.failed.length > 0) {
          for (const f of result.failed.slice(0, 10)) ctx.err(`floe push: ${f.path}: ${f.error}`);
          throw new CliExit(1);
        }
      },
    );
}

/**
 * How often the byte-progress line comes: a TTY redraws its one line five times a second; a log
 * gets a line every 5 s (FLOE_PROGRESS_INTERVAL seconds), enough to see a large path move.
 */
function progressInterval(tty: boolean, env: NodeJS.ProcessEnv): number {
  const configured = Number(env.FLOE_PROGRESS_INTERVAL);
  if (env.FLOE_PROGRESS_INTERVAL && Number.isFinite(configured) && configured >= 0) return configured * 1000;
  return tty ? 200 : 5000;
}
