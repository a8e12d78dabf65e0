/** `floe serve` and `floe migrate`: the server side of the binary. */
import cluster from 'node:cluster';
import path from 'node:path';
import type { Command } from 'commander';
import type { Config } from '../../config.js';
import { FloeError } from '../../errors.js';
import type { WorkerReady } from '../../supervisor.js';
import type { ServeFlags } from '../serve-config.js';
import { CliError } from '../client.js';
import type { CommandContext } from './context.js';

// The server's modules (and the settings' parsers) load only when a server command runs: every
// other command (`floe push` above all, run once per CI job) would otherwise pay ~0.5 s of CPU.
const serverModules = async () => {
  const [{ createLogger }, { startServer }, supervisor, { installProcessGuard }] = await Promise.all([
    import('../../log.js'),
    import('../../server.js'),
    import('../../supervisor.js'),
    import('../process-guard.js'),
  ]);
  return { createLogger, startServer, installProcessGuard, ...supervisor };
};
const loadConfig = async (...args: Parameters<typeof import('../../config.js').loadConfig>) =>
  (await import('../../config.js')).loadConfig(...args);
const printMigrationStatus = async (config: Config) =>
  (await import('../migrate-status.js')).printMigrationStatus(config);

export function registerServeCommands(program: Command, ctx: CommandContext): void {
  program
    .command('serve')
    .description('run the Floe server (embedded SQLite + local files by default)')
    .option('--data-dir <dir>', 'where Floe keeps its data (default: $FLOE_DATA_DIR or ./floe-data)')
    .option('--listen <host:port>', 'address to listen on (default: $FLOE_LISTEN or 127.0.0.1:8080)')
    .option('--public-url <url>', 'URL clients use to reach this server (default: $FLOE_PUBLIC_URL or from --listen)')
    .option(
      '--config <file>',
      'JSON file of settings (keys: the FLOE_* names without FLOE_, lower case); variables win (default: $FLOE_CONFIG)',
    )
    .option('--print-config', 'print the effective settings (secrets redacted) and exit')
    .option('--check', 'check the settings and list the schema migrations a start would run, then exit')
    .option(
      '--workers <n>',
      'processes sharing the port (default: $FLOE_WORKERS or one per core; 1 = a single process)',
    )
    .action(async (opts: ServeFlags & { printConfig?: boolean; check?: boolean; workers?: string }) => {
      const { printConfig, check, workers: workersFlag, ...flags } = opts;
      const { serveConfig, printableConfig } = await import('../serve-config.js');
      const config = await serveConfig(flags);
      if (printConfig) return void ctx.io.stdout.write(printableConfig(config));
      if (check) return printMigrationStatus(config);
      const { createLogger, startServer, installProcessGuard, superviseWorkers, workerCount, workerRole } =
        await serverModules();
      const log = createLogger(config.logLevel);
      const workers = cluster.isWorker ? 1 : workerCount(workersFlag, config.workers);
      const cannotStart = (err: unknown) => {
        if (err instanceof FloeError) return err;
        return new CliError(`cannot start: ${(err as Error).message}`);
      };
      const printServing = (ready: WorkerReady, processes: string) =>
        ctx.err(
          `floe: serving at ${ready.url} (${processes})\n` +
            `floe: storage: ${ready.storageDescription}\n` +
            `floe: substituter ${ready.url}/cache (each org signs with its own key: floe cache info)\n` +
            `floe: admin token is in ${ready.adminTokenFile} (mode 0600): export FLOE_TOKEN=$(cat ${ready.adminTokenFile})`,
        );
      if (workers > 1) {
        // The primary: it forks the workers, relays between them and handles the signals.
        const ready = await superviseWorkers(config, workers, log, (code) => process.exit(code)).catch(
          (err: unknown) => {
            throw cannotStart(err);
          },
        );
        installProcessGuard(log);
        printServing(ready, `${workers} worker processes`);
        return;
      }
      let server;
      try {
        server = await startServer(config, log, cluster.isWorker ? workerRole() : {});
      } catch (err) {
        throw cannotStart(err);
      }
      installProcessGuard(log);
      const ready: WorkerReady = {
        floeWorker: 'ready',
        url: server.url,
        storageDescription: server.storageDescription,
        adminTokenFile: server.adminTokenFile,
      };
      if (cluster.isWorker) process.send?.(ready);
      else printServing(ready, 'one process');
      // The first signal drains (requests in flight finish within FLOE_SHUTDOWN_GRACE_SECONDS);
      // a second one stops at once. Ending the process is the server's lifecycle, not a command's result.
      let stopping = false;
      const stop = (signal: NodeJS.Signals) => {
        if (stopping) process.exit(1);
        stopping = true;
        if (!cluster.isWorker)
          ctx.err(
            `floe: ${signal}: finishing requests in flight (up to ${config.shutdownGraceSeconds} s; ${signal} again to stop at once)`,
          );
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
      // A worker whose primary is gone gets no new connections: it finishes what it has and exits.
      if (cluster.isWorker) {
        // (Also heard while draining, once the worker's own channel closes: nothing more to do then.)
        if (process.connected) process.once('disconnect', () => stopping || stop('SIGTERM'));
        else stop('SIGTERM');
      }
    });

  program
    .command('migrate')
    .description(
      'copy an embedded installation (SQLite + files) to the backends configured by FLOE_DATABASE_URL and FLOE_S3_*, then verify it',
    )
    .option('--from <data-dir>', 'data directory of the stopped embedded installation')
    .option('--data-dir <dir>', 'data directory for the new installation (spool, admin token)', './floe-data-scaled')
    .option('--status', 'only list the schema migrations floe serve would run on FLOE_DATABASE_URL or --data-dir')
    .action(async (opts: { from?: string; dataDir: string; status?: boolean }, cmd: Command) => {
      if (opts.status)
        return printMigrationStatus(
          await loadConfig(cmd.getOptionValueSource('dataDir') === 'default' ? {} : { dataDir: opts.dataDir }),
        );
      if (!opts.from)
        throw new CliError('say which installation to copy: floe migrate --from <data-dir> (or --status)');
      const config = await loadConfig({ dataDir: opts.dataDir });
      if (!config.databaseUrl && !config.s3)
        throw new CliError(
          'nothing to migrate to: set FLOE_DATABASE_URL and/or FLOE_S3_BUCKET (with FLOE_S3_ENDPOINT etc.)',
        );
      const { migrateInstallation } = await import('../../migrate.js');
      try {
        await migrateInstallation(
          { dataDir: path.resolve(opts.from) },
          {
            dataDir: config.dataDir,
            ...(config.databaseUrl ? { databaseUrl: config.databaseUrl } : {}),
            ...(config.s3 ? { s3: config.s3 } : {}),
          },
          (line) => ctx.err(`floe migrate: ${line}`),
        );
      } catch (err) {
        throw new CliError(`migration failed: ${(err as Error).message}`);
      }
      ctx.err(
        'floe migrate: done. Start replicas with the same FLOE_DATABASE_URL, FLOE_S3_* and FLOE_PUBLIC_URL; existing tokens stay valid.',
      );
    });
}
