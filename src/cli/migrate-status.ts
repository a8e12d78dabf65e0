/** `floe migrate --status`: which schema migrations `floe serve` would run, without running them. */
import type { Config } from '../config.js';
import { inspectSchema } from '../storage/open.js';
import { CliError } from './client.js';

/** Also `floe serve --check`: the settings were valid (config was loaded); would the schema serve? */
export async function printMigrationStatus(config: Pick<Config, 'dataDir' | 'databaseUrl'>): Promise<void> {
  let status;
  try {
    status = await inspectSchema({
      dataDir: config.dataDir,
      ...(config.databaseUrl ? { databaseUrl: config.databaseUrl } : {}),
    });
  } catch (err) {
    throw new CliError(`cannot read the schema: ${(err as Error).message}`);
  }
  const lines = [
    ...status.applied.map((n) => `applied  ${n}`),
    ...status.pending.map((n) => `pending  ${n}`),
    ...status.unknown.map((n) => `unknown  ${n}  (run by a newer Floe)`),
  ];
  process.stdout.write(lines.map((l) => `${l}\n`).join(''));
  process.stderr.write(`floe migrate: ${status.description}\n`);
  if (status.unknown.length) {
    throw new CliError(
      `this version cannot serve this database: ${status.unknown.length} migration(s) come from a newer Floe`,
    );
  }
  process.stderr.write(
    status.pending.length
      ? `floe migrate: ${status.pending.length} migration(s) would run at the next floe serve start\n`
      : 'floe migrate: up to date, nothing would run\n',
  );
}
