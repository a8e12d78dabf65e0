/** The `floe` command line. */
import { Command, Option } from 'commander';
import { loadConfig } from '../config.js';
import { FloeError } from '../errors.js';
import { createLogger } from '../log.js';
import { startServer } from '../server.js';
import { migrateInstallation } from '../migrate.js';
import path from 'node:path';
import { CliError, apiRequest, clientOptions } from './client.js';

const program = new Command();
program.name('floe').description('Floe: self-hostable flake registry and identity-aware Nix binary cache').showHelpAfterError();

const serverOption = () => new Option('--server <url>', 'Floe server URL (default: $FLOE_SERVER)');

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
    process.stderr.write(
      `floe: serving at ${server.url}\n` +
        `floe: storage: ${server.storageDescription}\n` +
        `floe: substituter ${server.url}/cache, trusted key ${server.nixPublicKey}\n` +
        `floe: admin token is in ${server.adminTokenFile} (mode 0600): export FLOE_TOKEN=$(cat ${server.adminTokenFile})\n`,
    );
    const stop = async () => {
      await server.close();
      process.exit(0);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
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
        (line) => process.stderr.write(`floe migrate: ${line}\n`),
      );
    } catch (err) {
      throw new CliError(`migration failed: ${(err as Error).message}`);
    }
    process.stderr.write(`floe migrate: done. Start replicas with the same FLOE_DATABASE_URL, FLOE_S3_* and FLOE_PUBLIC_URL; existing tokens stay valid.\n`);
  });

const org = program.command('org').description('manage orgs');
org
  .command('create <org>')
  .description('create an org (needs the server admin token in FLOE_TOKEN)')
  .addOption(serverOption())
  .option('--json', 'print JSON')
  .action(async (name: string, opts: { server?: string; json?: boolean }) => {
    const res = await apiRequest<{ name: string; slices: string[] }>(clientOptions(opts), 'POST', '/api/v1/orgs', { name });
    console.log(opts.json ? JSON.stringify(res) : `created org ${res.name} with slice ${res.slices.join(', ')}`);
  });

const slice = program.command('slice').description('manage cache slices of an org');
slice
  .command('create <org> <slice>')
  .description('create a named cache slice (private unless --public)')
  .addOption(serverOption())
  .option('--public', 'anyone may read this slice')
  .option('--json', 'print JSON')
  .action(async (orgName: string, name: string, opts: { server?: string; public?: boolean; json?: boolean }) => {
    const res = await apiRequest<{ url: string; public: boolean }>(clientOptions(opts), 'POST', `/api/v1/orgs/${encodeURIComponent(orgName)}/slices`, {
      name,
      public: Boolean(opts.public),
    });
    console.log(opts.json ? JSON.stringify(res) : `created ${res.public ? 'public' : 'private'} slice ${orgName}/${name}: ${res.url}`);
  });
slice
  .command('set <org> <slice>')
  .description('change the visibility of a slice')
  .addOption(serverOption())
  .addOption(new Option('--visibility <v>', 'public or private').choices(['public', 'private']).makeOptionMandatory())
  .action(async (orgName: string, name: string, opts: { server?: string; visibility: string }) => {
    await apiRequest(clientOptions(opts), 'PATCH', `/api/v1/orgs/${encodeURIComponent(orgName)}/slices/${encodeURIComponent(name)}`, {
      public: opts.visibility === 'public',
    });
    console.log(`${orgName}/${name} is now ${opts.visibility}`);
  });

const token = program.command('token').description('manage Floe tokens');
token
  .command('create')
  .description('mint a token; prints it alone on stdout')
  .addOption(serverOption())
  .requiredOption('--org <org>', 'org the token belongs to')
  .option('--scope <scopes>', 'comma-separated: read, write, admin', 'read')
  .option('--slice <slices>', 'comma-separated slice names to limit the token to')
  .option('--ttl <duration>', 'lifetime, e.g. 30m, 1h, 7d', '24h')
  .option('--subject <name>', 'who or what the token is for (shown in logs)')
  .option('--description <text>', 'free-form note')
  .option('--json', 'print JSON with id and expiry')
  .action(async (opts: { server?: string; org: string; scope: string; slice?: string; ttl: string; subject?: string; description?: string; json?: boolean }) => {
    const scopes = opts.scope.split(',').map((s) => s.trim()).filter(Boolean);
    const bad = scopes.filter((s) => !['read', 'write', 'admin'].includes(s));
    if (bad.length) throw new CliError(`unknown scope ${bad.join(', ')}: use read, write or admin`);
    const res = await apiRequest<{ token: string; id: string; expiresAt: string }>(clientOptions(opts), 'POST', '/api/v1/tokens', {
      org: opts.org,
      scopes,
      ...(opts.slice ? { slices: opts.slice.split(',').map((s) => s.trim()).filter(Boolean) } : {}),
      ttl: opts.ttl,
      ...(opts.subject ? { subject: opts.subject } : {}),
      ...(opts.description ? { description: opts.description } : {}),
    });
    console.log(opts.json ? JSON.stringify(res) : res.token);
  });
token
  .command('revoke <id>')
  .description('revoke a token by id (see `token create --json`)')
  .addOption(serverOption())
  .action(async (id: string, opts: { server?: string }) => {
    await apiRequest(clientOptions(opts), 'DELETE', `/api/v1/tokens/${encodeURIComponent(id)}`);
    console.log(`revoked ${id}`);
  });

const cache = program.command('cache').description('binary cache');
cache
  .command('info')
  .description('print the nix.conf lines that use this cache')
  .addOption(serverOption())
  .option('--json', 'print JSON')
  .action(async (opts: { server?: string; json?: boolean }) => {
    const res = await apiRequest<{ substituter: string; publicKey: string; nixConf: string }>(clientOptions(opts), 'GET', '/api/v1/cache/info');
    process.stdout.write(opts.json ? `${JSON.stringify(res)}\n` : res.nixConf);
  });

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof CliError || err instanceof FloeError) {
    process.stderr.write(`floe: ${err.message}\n`);
    process.exit(1);
  }
  process.stderr.write(`floe: unexpected error: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
