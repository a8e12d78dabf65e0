/** `floe backup` and `floe restore`: the embedded backend's online backup (src/storage/backup.ts). */
import path from 'node:path';
import type { Command } from 'commander';
import { CliError } from './client.js';

// Loaded when a backup command runs, not on every `floe` start (see commands/serve.ts).
const backupModules = async () => ({ ...(await import('../config.js')), ...(await import('../storage/backup.js')) });

const say = (command: string) => (line: string) => process.stderr.write(`floe ${command}: ${line}\n`);

export function registerBackupCommands(program: Command): void {
  program
    .command('backup')
    .description(
      'copy the embedded installation (SQLite + NAR files) consistently into a new directory, while it serves',
    )
    .requiredOption('--to <dir>', 'new or empty directory for the backup')
    .option('--data-dir <dir>', 'data directory to back up (default: $FLOE_DATA_DIR or ./floe-data)')
    .action(async (opts: { to: string; dataDir?: string }) => {
      const { loadConfig, backupDataDir } = await backupModules();
      const config = loadConfig(opts.dataDir ? { dataDir: opts.dataDir } : {});
      if (config.databaseUrl || config.s3) {
        throw new CliError(
          'floe backup copies the embedded backend only; for PostgreSQL and S3 see docs/OPERATIONS.md (pg_dump + bucket versioning)',
        );
      }
      try {
        const m = await backupDataDir(config.dataDir, path.resolve(opts.to), say('backup'));
        say('backup')(
          `done: ${m.files.length} files in ${path.resolve(opts.to)} (restore with floe restore --from ${path.resolve(opts.to)} --data-dir NEW)`,
        );
      } catch (err) {
        throw new CliError(`backup failed: ${(err as Error).message}`);
      }
    });

  program
    .command('restore')
    .description('make a new data directory from a `floe backup`, checking every file against its manifest')
    .requiredOption('--from <dir>', 'the backup directory')
    .requiredOption('--data-dir <dir>', 'new or empty data directory to create')
    .action(async (opts: { from: string; dataDir: string }) => {
      try {
        const { restoreDataDir } = await backupModules();
        await restoreDataDir(path.resolve(opts.from), path.resolve(opts.dataDir), say('restore'));
      } catch (err) {
        throw new CliError(`restore failed: ${(err as Error).message}`);
      }
      say('restore')(
        `done: start it with floe serve --data-dir ${path.resolve(opts.dataDir)} (pending migrations run at start)`,
      );
    });
}
