/** `floe serve` and `floe migrate`: the server side of the binary. */
import path from 'node:path';
import type { Command } from 'commander';
import { loadConfig } from '../../config.js';
import { FloeError } from '../../errors.js';
import { createLogger } from '../../log.js';
import { migrateInstallation } from '../../migrate.js';
import { startServer } from '../../server.js';
import { CliError } from '../client.js';
import { installProcessGuard } from '../process-guard.js';
import type { CommandContext } from './context.js';

export function registerServeCommands(program: Command, ctx: CommandContext): void {
  program
    .command('serve')
    .description('run the Floe server (embedded SQLite + local files by default)')
    .option('--data-dir <dir>', 'where Floe keeps its data (default: $FLOE_DATA_DIR or ./floe-data)')
    .option('--listen <host:port>', 'address to listen on (default: $FLOE_LISTEN or 127.0.0.1:8080)')
    .option('--public-url <url>', 'URL clients use to reach this server (default: $FLOE_PUBLIC_URL or from --listen)')
    .action(async (opts: { dataDir?: string; listen?: string; publicUrl?: string }) => {
      const config = loadConfig(opts);
      const log = createLogger(config.logLevel);
      let server;
      try {
        server = await startServer(config, log);
      } catch (err) {
        if (err instanceof FloeError) throw err;
        throw new CliError(`cannot start: ${(err as Error).message}`);
      }
      installProcessGuard(log);
      ctx.err(
        `floe: serving at ${server.url}\n` +
          `floe: storage: ${server.storageDescription}\n` +
          `floe: substituter ${server.url}/cache (each org signs with its own key: floe cache info)\n` +
          `floe: admin token is in ${server.adminTokenFile} (mode 0600): export FLOE_TOKEN=$(cat ${server.adminTokenFile})`,
      );
      // The first signal drains (requests in flight finish within FLOE_SHUTDOWN_GRACE_SECONDS);
      // a second one stops at once. Ending the process is the server's lifecycle, not a command's result.
      let stopping = false;
      const stop = (signal: NodeJS.Signals) => {
        if (stopping) process.exit(1);
        stopping = true;
        ctx.err(`floe: ${signal}: finishing requests in flight (up to ${config.shutdownGraceSeconds} s; ${signal} again to stop at once)`);
        server.close().then(
          () => process.exit(0),
          (err: unknown) => {
            log.error({ err }, 'shutdown failed');
            process.exit(1);
          },
        );
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });

  program
    .command('migrate')
    .description('copy an embedded installation (SQLite + files) to the backends configured by FLOE_DATABASE_URL and FLOE_S3_*, then verify it')
    .requiredOption('--from <data-dir>', 'data directory of the stopped embedded installation')
    .option('--data-dir <dir>', 'data directory for the new installation (spool, admin token)', './floe-data-scaled')
    .action(async (opts: { from: string; dataDir: string }) => {
      const config = loadConfig({ dataDir: opts.dataDir });
      if (!config.databaseUrl && !config.s3) throw new CliError('nothing to migrate to: set FLOE_DATABASE_URL and/or FLOE_S3_BUCKET (with FLOE_S3_ENDPOINT etc.)');
      try {
        await migrateInstallation(
          { dataDir: path.resolve(opts.from) },
          { dataDir: config.dataDir, ...(config.databaseUrl ? { databaseUrl: config.databaseUrl } : {}), ...(config.s3 ? { s3: config.s3 } : {}) },
          (line) => ctx.err(`floe migrate: ${line}`),
        );
      } catch (err) {
        throw new CliError(`migration failed: ${(err as Error).message}`);
      }
      ctx.err('floe migrate: done. Start replicas with the same FLOE_DATABASE_URL, FLOE_S3_* and FLOE_PUBLIC_URL; existing tokens stay valid.');
    });
}
