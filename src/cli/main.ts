/** The `floe` command line. */
import { Command, Option } from 'commander';
import { loadConfig } from '../config.js';
import { FloeError } from '../errors.js';
import { createLogger } from '../log.js';
import { startServer } from '../server.js';
import { installProcessGuard } from './process-guard.js';
import { migrateInstallation } from '../migrate.js';
import path from 'node:path';
import { CliError, apiRequest, clientOptions, nixConfigDir, parseFlakeRef } from './client.js';
import { exchangeIdentity, githubActionsIdToken, saveLogin, serverAudience } from './login.js';
import { signGetCallerIdentity } from './aws.js';
import { browserLogin, deviceLogin } from './oidc-login.js';
import { push } from './push.js';
import { registerPolicyCommands } from './policy.js';
import { parsePriority, registerSourceCommands } from './sources.js';
import { registerWatchCommands } from './watch.js';
import { apply } from './apply.js';
import { publishFlake } from './publish.js';
import { FlakeEditError, addFlakeInput } from './flake-add.js';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { upsertNixConfBlock } from './netrc.js';
import { spawn } from 'node:child_process';
import { registerVersionOption } from './version.js';

const program = new Command();
program.name('floe').description('Floe: self-hostable flake registry and identity-aware Nix binary cache').showHelpAfterError();
// Options belong to the command they follow: `floe login github-action --json` is the subcommand's --json.
program.enablePositionalOptions();
registerVersionOption(program);

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
    installProcessGuard(log);
    process.stderr.write(
      `floe: serving at ${server.url}\n` +
        `floe: storage: ${server.storageDescription}\n` +
        `floe: substituter ${server.url}/cache (each org signs with its own key: floe cache info)\n` +
        `floe: admin token is in ${server.adminTokenFile} (mode 0600): export FLOE_TOKEN=$(cat ${server.adminTokenFile})\n`,
    );
    // The first signal drains (requests in flight finish within FLOE_SHUTDOWN_GRACE_SECONDS);
    // a second one stops at once.
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) process.exit(1);
      stopping = true;
      process.stderr.write(`floe: ${signal}: finishing requests in flight (up to ${config.shutdownGraceSeconds} s; ${signal} again to stop at once)\n`);
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
        (line) => process.stderr.write(`floe migrate: ${line}\n`),
      );
    } catch (err) {
      throw new CliError(`migration failed: ${(err as Error).message}`);
    }
    process.stderr.write(`floe migrate: done. Start replicas with the same FLOE_DATABASE_URL, FLOE_S3_* and FLOE_PUBLIC_URL; existing tokens stay valid.\n`);
  });

const loginOutput = (cmd: Command) =>
  cmd
    .addOption(serverOption())
    .option('--org <org>', 'org to log in to, when the identity is trusted by several')
    .option('--ttl <duration>', 'shorter token lifetime than the org allows, e.g. 30m')
    .option('--netrc <file>', 'netrc file to update (default: $XDG_CONFIG_HOME/nix/netrc)')
    .option('--nix-conf <file>', 'nix.conf to update (default: $XDG_CONFIG_HOME/nix/nix.conf)')
    .option('--no-nix-conf', 'do not touch nix.conf')
    .option('--print', 'print the netrc and nix.conf lines instead of writing them')
    .option('--json', 'print a JSON summary');
type LoginOpts = { server?: string; org?: string; ttl?: string; netrc?: string; nixConf?: string | false; print?: boolean; json?: boolean };
const outputOf = (o: LoginOpts) => ({
  ...(o.netrc ? { netrc: o.netrc } : {}),
  ...(o.nixConf !== undefined ? { nixConf: o.nixConf } : {}),
  ...(o.print ? { print: true } : {}),
  ...(o.json ? { json: true } : {}),
});
const exchangeOpts = (o: LoginOpts) => ({ ...(o.org ? { org: o.org } : {}), ...(o.ttl ? { ttl: o.ttl } : {}) });

const login = loginOutput(program.command('login').description('log in: exchange a CI or IdP identity for a Floe token, or save a token (--token)'))
  .option('--token <token>', 'save this Floe token (or "-" to read it from stdin)')
  .action(async (opts: LoginOpts & { token?: string }) => {
    if (!opts.token) throw new CliError('say how to log in: `floe login github-action`, `floe login gitlab-pipeline`, `floe login oidc --id-token-file F` or `floe login --token TOKEN`');
    const client = clientOptions(opts);
    const token = opts.token === '-' ? (await readStdin()).trim() : opts.token;
    const who = await apiRequest<{ kind: string; org?: string; subject?: string; scopes?: string[]; expiresAt?: string | null }>({ ...client, token }, 'GET', '/api/v1/auth/whoami');
    if (who.kind === 'anonymous') throw new CliError('the server did not accept that token');
    await saveLogin(client, { token, ...(who.org ? { org: who.org } : {}), ...(who.subject ? { subject: who.subject } : {}), ...(who.scopes ? { scopes: who.scopes } : {}), expiresAt: who.expiresAt ?? null }, outputOf(opts));
  });
loginOutput(login.command('github-action').description('in a GitHub Actions job (permissions: id-token: write)'))
  .option('--refresh', 'keep the login fresh for long jobs: a background process logs in again before the token expires')
  .option('--refresh-before <duration>', 'with --refresh: how long before expiry to log in again', '10m')
  .addOption(new Option('--refresh-loop <expires-at-ms>').hideHelp())
  .action(async (opts: LoginOpts & { refresh?: boolean; refreshBefore: string; refreshLoop?: string }) => {
    const client = clientOptions(opts);
    const once = async (output: ReturnType<typeof outputOf>) => {
      const idToken = await githubActionsIdToken(await serverAudience(client));
      const result = await exchangeIdentity(client, idToken, exchangeOpts(opts));
      await saveLogin(client, result, output);
      return result;
    };
    if (!opts.refreshLoop) {
      const first = await once(outputOf(opts));
      if (opts.refresh) {
        // The runner ends leftover processes when the job finishes, which ends the refresher too.
        const args = process.argv.slice(2).filter((a) => a !== '--refresh' && a !== '--json' && a !== '--print');
        const expires = first.expiresAt ? Date.parse(first.expiresAt) : Date.now() + 3600_000;
        const child = spawn(process.execPath, [process.argv[1]!, ...args, '--refresh-loop', String(expires)], { detached: true, stdio: 'ignore', env: process.env });
        child.unref();
        process.stderr.write(`floe: refreshing the login in the background (pid ${child.pid})\n`);
      }
      return;
    }
    const before = parseDuration(opts.refreshBefore);
    const quiet = { ...outputOf(opts), json: false, print: false };
    let expiresAt = Number(opts.refreshLoop);
    for (;;) {
      const wait = Math.max(1_000, expiresAt - before - Date.now());
      await new Promise((r) => setTimeout(r, wait));
      try {
        const result = await once(quiet);
        expiresAt = result.expiresAt ? Date.parse(result.expiresAt) : Date.now() + 3600_000;
      } catch {
        expiresAt = Date.now() + before + 30_000; // retry in 30 s
      }
    }
  });

function parseDuration(text: string): number {
  const m = /^(\d+)(s|m|h)$/.exec(text);
  if (!m) throw new CliError(`expected a duration like 90s, 10m or 1h, got ${JSON.stringify(text)}`);
  return Number(m[1]) * { s: 1000, m: 60_000, h: 3600_000 }[m[2] as 's' | 'm' | 'h'];
}
loginOutput(login.command('gitlab-pipeline').description('in a GitLab CI job with an id_token whose aud is this server'))
  .option('--token-var <name>', 'CI/CD variable holding the id_token', 'FLOE_ID_TOKEN')
  .action(async (opts: LoginOpts & { tokenVar: string }) => {
    const idToken = process.env[opts.tokenVar];
    if (!idToken) throw new CliError(`$${opts.tokenVar} is not set: declare it under id_tokens in .gitlab-ci.yml with aud set to this server (see \`floe login --help\`)`);
    const client = clientOptions(opts);
    await saveLogin(client, await exchangeIdentity(client, idToken, exchangeOpts(opts)), outputOf(opts));
  });
loginOutput(login.command('aws').description('with the AWS credentials of this machine (role, profile, env): presigned sts:GetCallerIdentity')).action(
  async (opts: LoginOpts) => {
    const client = clientOptions(opts);
    const info = await apiRequest<{ audience: string; awsAudienceHeader: string }>({ ...client, token: undefined }, 'GET', '/api/v1/auth/info');
    const signed = await signGetCallerIdentity(info.audience, info.awsAudienceHeader);
    const result = await apiRequest<{ token: string; org: string; scopes: string[]; subject: string; expiresAt: string }>({ ...client, token: undefined }, 'POST', '/api/v1/auth/aws', {
      ...signed,
      ...exchangeOpts(opts),
    });
    await saveLogin(client, result, outputOf(opts));
  },
);
loginOutput(login.command('oidc').description('a person, through an OIDC provider (Entra ID, ...): browser (PKCE) or --device; or exchange --id-token-file'))
  .option('--issuer <url>', 'identity provider (default: the one the server offers)')
  .option('--client-id <id>', "the Floe CLI's client id at the provider (default: from the server)")
  .option('--device', 'device-code flow, for machines without a browser')
  .option('--no-browser', 'print the login URL instead of opening a browser')
  .option('--id-token-file <file>', 'exchange this token instead ("-" for stdin)')
  .action(async (opts: LoginOpts & { idTokenFile?: string; issuer?: string; clientId?: string; device?: boolean; browser: boolean }) => {
    const client = clientOptions(opts);
    let idToken: string;
    if (opts.idTokenFile) {
      idToken = (opts.idTokenFile === '-' ? await readStdin() : await readFile(opts.idTokenFile, 'utf8')).trim();
    } else {
      let issuer = opts.issuer;
      let clientId = opts.clientId;
      if (!issuer || !clientId) {
        const info = await apiRequest<{ logins: Array<{ issuer: string; clientId: string; org: string }> }>({ ...client, token: undefined }, 'GET', '/api/v1/auth/info');
        const offered = info.logins.filter((l) => (!issuer || l.issuer === issuer) && (!opts.org || l.org === opts.org));
        if (offered.length === 0) throw new CliError('the server offers no interactive login; pass --issuer and --client-id');
        if (new Set(offered.map((l) => `${l.issuer} ${l.clientId}`)).size > 1) {
          throw new CliError(`several identity providers are offered (${offered.map((l) => l.issuer).join(', ')}): pass --issuer or --org`);
        }
        issuer ??= offered[0]!.issuer;
        clientId ??= offered[0]!.clientId;
      }
      idToken = opts.device ? await deviceLogin(issuer, clientId) : await browserLogin(issuer, clientId, { openBrowser: opts.browser });
    }
    await saveLogin(client, await exchangeIdentity(client, idToken, exchangeOpts(opts)), outputOf(opts));
  });

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

program
  .command('push [paths...]')
  .description('upload the closures of store paths (or ./result links) to the cache; only what is missing is sent')
  .addOption(serverOption())
  .option('--slice <org/slice>', 'upload to this slice (default: the token\'s)')
  .option('-j, --jobs <n>', 'parallel uploads', '4')
  .option('--build-json <file>', 'also push every output listed in `nix build --json` output ("-" for stdin): the CI mode')
  .option('--json', 'print a JSON summary')
  .action(async (paths: string[], opts: { server?: string; slice?: string; jobs: string; json?: boolean; buildJson?: string }) => {
    if (opts.buildJson) {
      let built: unknown;
      try {
        built = JSON.parse(opts.buildJson === '-' ? await readStdin() : await readFile(opts.buildJson, 'utf8'));
      } catch {
        throw new CliError(`--build-json: ${opts.buildJson} is not the JSON that \`nix build --json\` prints`);
      }
      for (const entry of Array.isArray(built) ? (built as Array<{ outputs?: Record<string, string> }>) : []) paths.push(...Object.values(entry.outputs ?? {}));
    }
    if (paths.length === 0) throw new CliError('nothing to push: give store paths, ./result links or --build-json');
    const jobs = Number(opts.jobs);
    if (!Number.isInteger(jobs) || jobs < 1 || jobs > 64) throw new CliError('--jobs must be between 1 and 64');
    if (opts.slice && !/^[a-z0-9][a-z0-9_-]*\/[a-z0-9][a-z0-9_-]*$/.test(opts.slice)) throw new CliError('--slice must look like org/slice');
    const tty = process.stderr.isTTY;
    const result = await push(clientOptions(opts), paths, {
      ...(opts.slice ? { slice: opts.slice } : {}),
      jobs,
      progress: (line, final) => {
        if (tty && !final) process.stderr.write(`\r\x1b[K${line.slice(0, (process.stderr.columns ?? 120) - 1)}`);
        else process.stderr.write(`${tty ? '\r\x1b[K' : ''}floe push: ${line}\n`);
      },
    });
    if (tty) process.stderr.write('\r\x1b[K');
    if (opts.json) console.log(JSON.stringify(result));
    else process.stderr.write(`floe push: ${result.uploaded} uploaded, ${result.present} already present, ${result.failed.length} failed of ${result.total} paths\n`);
    if (result.failed.length > 0) {
      for (const f of result.failed.slice(0, 10)) process.stderr.write(`floe push: ${f.path}: ${f.error}\n`);
      process.exit(1);
    }
  });

program
  .command('apply <target> <ref>')
  .description('apply a published NixOS, nix-darwin or Home Manager configuration: fetch its closure from the cache, set the profile, activate')
  .addOption(serverOption())
  .option('--profile <path>', 'profile to point at the configuration')
  .addOption(new Option('--verb <verb>', 'NixOS activation').choices(['switch', 'boot', 'test', 'dry-activate']).default('switch'))
  .option('--netrc <file>', 'netrc for the cache (default: the one `floe login` wrote)')
  .option('--dry-run', 'show what would be done')
  .action(async (target: string, ref: string, opts: { server?: string; profile?: string; verb: 'switch' | 'boot' | 'test' | 'dry-activate'; netrc?: string; dryRun?: boolean }) => {
    if (target !== 'nixos' && target !== 'nix-darwin' && target !== 'home-manager') throw new CliError('target must be nixos, nix-darwin or home-manager');
    await apply(clientOptions(opts), {
      target,
      ref,
      verb: opts.verb,
      dryRun: Boolean(opts.dryRun),
      ...(opts.profile ? { profile: opts.profile } : {}),
      ...(opts.netrc ? { netrc: opts.netrc } : {}),
      log: (line) => process.stderr.write(`floe apply: ${line}\n`),
    });
  });

program
  .command('publish')
  .description('publish a release of the flake in this git checkout (from CI), with its outputs pushed to the cache')
  .addOption(serverOption())
  .option('--dir <dir>', 'flake directory inside the checkout', '.')
  .option('--org <org>', 'org (default: owner of $GITHUB_REPOSITORY)')
  .option('--name <flake>', 'flake name (default: the repository name)')
  .option('--rolling', 'rolling release 0.<minor>.<commit count>+rev-<sha>')
  .option('--rolling-minor <n>', 'minor version of rolling releases', '1')
  .option('--tag <tag>', 'semver tag to publish (default: the CI tag)')
  .addOption(new Option('--visibility <v>', 'who can see it').choices(['public', 'unlisted', 'private']).default('private'))
  .option('--include-output <attr...>', 'build these outputs, push their closures and record their store paths')
  .option('--label <label...>', 'labels for search')
  .option('--dry-run', 'show what would be published')
  .option('--json', 'print JSON')
  .action(async (opts: { server?: string; dir: string; org?: string; name?: string; rolling?: boolean; rollingMinor: string; tag?: string; visibility: 'public' | 'unlisted' | 'private'; includeOutput?: string[]; label?: string[]; dryRun?: boolean; json?: boolean }) => {
    const result = await publishFlake(clientOptions(opts), {
      dir: opts.dir,
      ...(opts.org ? { org: opts.org } : {}),
      ...(opts.name ? { name: opts.name } : {}),
      rolling: Boolean(opts.rolling),
      rollingMinor: Number(opts.rollingMinor),
      ...(opts.tag ? { tag: opts.tag } : {}),
      visibility: opts.visibility,
      includeOutputs: opts.includeOutput ?? [],
      labels: opts.label ?? [],
      dryRun: Boolean(opts.dryRun),
      log: (line) => process.stderr.write(`floe publish: ${line}\n`),
    });
    if (opts.json) console.log(JSON.stringify(result));
    else console.log(result.url);
  });

program
  .command('list <what> [scope]')
  .description('list orgs, the flakes of an org (`list flakes acme`) or the releases of a flake (`list releases acme/tools`)')
  .addOption(serverOption())
  .option('--json', 'print JSON')
  .action(async (what: string, scope: string | undefined, opts: { server?: string; json?: boolean }) => {
    const client = clientOptions(opts);
    if (what === 'orgs') {
      const res = await apiRequest<{ orgs: Array<{ name: string; flakes: number }> }>(client, 'GET', '/api/v1/flake-orgs');
      if (opts.json) return console.log(JSON.stringify(res.orgs));
      for (const o of res.orgs) console.log(`${o.name}  ${o.flakes} flake(s)`);
    } else if (what === 'flakes') {
      if (!scope) throw new CliError('which org? `floe list flakes <org>`');
      const res = await apiRequest<{ flakes: Array<{ org: string; flake: string; visibility: string; description: string | null }> }>(client, 'GET', `/api/v1/orgs/${encodeURIComponent(scope)}/flakes`);
      if (opts.json) return console.log(JSON.stringify(res.flakes));
      for (const f of res.flakes) console.log(`${f.org}/${f.flake}  ${f.visibility}${f.description ? `  ${f.description}` : ''}`);
    } else if (what === 'releases') {
      const m = /^([^/]+)\/([^/]+)$/.exec(scope ?? '');
      if (!m) throw new CliError('which flake? `floe list releases <org>/<flake>`');
      const res = await apiRequest<{ releases: Array<{ version: string; yanked: boolean; publishedAt: string }> }>(client, 'GET', `/api/v1/flakes/${encodeURIComponent(m[1]!)}/${encodeURIComponent(m[2]!)}/releases`);
      if (opts.json) return console.log(JSON.stringify(res.releases));
      for (const r of res.releases) console.log(`${r.version}  ${r.publishedAt}${r.yanked ? '  (yanked)' : ''}`);
    } else {
      throw new CliError('list what? orgs, flakes <org> or releases <org>/<flake>');
    }
  });

program
  .command('add <ref>')
  .description('add a Floe flake as an input of ./flake.nix: `floe add acme/tools` (newest 0.x/1.x…) or `floe add acme/tools/0.1`')
  .addOption(serverOption())
  .option('--dir <dir>', 'directory of the flake.nix to edit', '.')
  .option('--input-name <name>', 'name of the input (default: the flake name)')
  .action(async (ref: string, opts: { server?: string; dir: string; inputName?: string }) => {
    const m = /^([^/]+)\/([^/]+)(?:\/(.+))?$/.exec(ref);
    if (!m) throw new CliError('expected <org>/<flake>[/<requirement>]');
    const [, orgName, flake, req] = m;
    const client = clientOptions(opts);
    // Without a requirement, pin to the newest release's major line (Cargo's caret), as fh does.
    const latest = await apiRequest<{ version: string }>(client, 'GET', `/api/v1/flakes/${encodeURIComponent(orgName!)}/${encodeURIComponent(flake!)}/resolve/${encodeURIComponent(req ?? '*')}`);
    const [major, minor] = latest.version.split('.');
    const requirement = req ?? (major === '0' ? `0.${minor}` : major!);
    const url = `${client.server}/f/${orgName}/${flake}/${requirement}.tar.gz`;
    const file = path.join(path.resolve(opts.dir), 'flake.nix');
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch {
      throw new CliError(`no flake.nix in ${path.resolve(opts.dir)}`);
    }
    try {
      await writeFile(file, addFlakeInput(text, opts.inputName ?? flake!.replace(/[^A-Za-z0-9_'-]/g, '-'), url));
    } catch (err) {
      if (err instanceof FlakeEditError) throw new CliError(`${file}: ${err.message}`);
      throw err;
    }
    console.error(`floe: added ${url} to ${file} (newest match today: ${latest.version}); add it to the outputs arguments and run \`nix flake lock\``);
  });

program
  .command('status')
  .description('who am I on this server: org, subject, scopes, token expiry, cache URL')
  .addOption(serverOption())
  .option('--json', 'print JSON')
  .action(async (opts: { server?: string; json?: boolean }) => {
    const client = clientOptions(opts);
    const who = await apiRequest<Record<string, unknown>>(client, 'GET', '/api/v1/auth/whoami');
    const cache = await apiRequest<{ substituter: string }>({ ...client, token: undefined }, 'GET', '/api/v1/cache/info');
    if (opts.json) return console.log(JSON.stringify({ ...who, server: client.server, substituter: cache.substituter }));
    if (who.kind === 'anonymous') console.log(`not logged in to ${client.server} (set FLOE_TOKEN or run \`floe login\`)`);
    else if (who.kind === 'server-admin') console.log(`server admin on ${client.server}`);
    else console.log(`${who.subject} in org ${who.org} on ${client.server}\nscopes: ${(who.scopes as string[]).join(', ')}${who.slices ? ` (slices ${(who.slices as string[]).join(', ')})` : ''}\nexpires: ${who.expiresAt ?? 'never'}`);
    console.log(`substituter: ${cache.substituter}`);
  });

program
  .command('search <query...>')
  .description('search flakes by name, description and labels')
  .addOption(serverOption())
  .option('--json', 'print JSON')
  .action(async (query: string[], opts: { server?: string; json?: boolean }) => {
    const res = await apiRequest<{ results: Array<{ org: string; flake: string; description: string | null; labels: string[] }> }>(
      clientOptions(opts),
      'GET',
      `/api/v1/search?q=${encodeURIComponent(query.join(' '))}`,
    );
    if (opts.json) return console.log(JSON.stringify(res.results));
    if (res.results.length === 0) return console.error('no flakes found');
    for (const r of res.results) console.log(`${r.org}/${r.flake}${r.description ? `  ${r.description}` : ''}`);
  });

program
  .command('resolve <ref>')
  .description('resolve <org>/<flake>/<requirement>[#<output attribute>] to a release, or to the output\'s store path')
  .addOption(serverOption())
  .option('--json', 'print JSON')
  .action(async (ref: string, opts: { server?: string; json?: boolean }) => {
    const { org, flake, requirement: req = '*', attribute: attr } = parseFlakeRef(ref);
    const base = `/api/v1/flakes/${encodeURIComponent(org)}/${encodeURIComponent(flake)}/resolve/${encodeURIComponent(req)}`;
    const res = await apiRequest<{ version: string; storePath?: string; url: string }>(clientOptions(opts), 'GET', attr ? `${base}/output/${encodeURIComponent(attr)}` : base);
    if (opts.json) return console.log(JSON.stringify(res));
    console.log(attr ? res.storePath : `${org}/${flake} ${res.version}  ${res.url}`);
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
  .option('--in-view', "also serve it on the org's unified /cache, after default (otherwise only at its own URL)")
  .option('--json', 'print JSON')
  .action(async (orgName: string, name: string, opts: { server?: string; public?: boolean; inView?: boolean; json?: boolean }) => {
    const res = await apiRequest<{ url: string; public: boolean }>(clientOptions(opts), 'POST', `/api/v1/orgs/${encodeURIComponent(orgName)}/slices`, {
      name,
      public: Boolean(opts.public),
      inView: Boolean(opts.inView),
    });
    console.log(opts.json ? JSON.stringify(res) : `created ${res.public ? 'public' : 'private'} slice ${orgName}/${name}: ${res.url}`);
  });
slice
  .command('set <org> <slice>')
  .description("change a slice's visibility, or its place in the org's unified view")
  .addOption(serverOption())
  .addOption(new Option('--visibility <v>', 'public or private').choices(['public', 'private']))
  .option('--in-view', "serve it on the org's unified /cache (after default, by priority)")
  .option('--no-in-view', 'serve it only at its own URL')
  .option('--priority <n>', 'order among the org\'s slices in the view (lower first; default 100)')
  .action(async (orgName: string, name: string, opts: { server?: string; visibility?: string; inView?: boolean; priority?: string }) => {
    const body = {
      ...(opts.visibility ? { public: opts.visibility === 'public' } : {}),
      ...(opts.inView !== undefined ? { inView: opts.inView } : {}),
      ...(opts.priority !== undefined ? { priority: parsePriority(opts.priority) } : {}),
    };
    if (Object.keys(body).length === 0) throw new CliError('say what to change: --visibility, --in-view / --no-in-view or --priority');
    const res = await apiRequest<{ public: boolean; inView: boolean; priority: number }>(clientOptions(opts), 'PATCH', `/api/v1/orgs/${encodeURIComponent(orgName)}/slices/${encodeURIComponent(name)}`, body);
    console.log(`${orgName}/${name}: ${res.public ? 'public' : 'private'}, ${res.inView ? `in the org's view (priority ${res.priority})` : 'only at its own URL'}`);
  });

const token = program.command('token').description('manage Floe tokens');
token
  .command('create')
  .description('mint a token; prints it alone on stdout')
  .addOption(serverOption())
  .requiredOption('--org <org>', 'org the token belongs to')
  .option('--scope <scopes>', 'comma-separated: read, write, publish, admin', 'read')
  .option('--slice <slices>', 'comma-separated slice names to limit the token to')
  .option('--ttl <duration>', 'lifetime, e.g. 30m, 1h, 7d', '24h')
  .option('--subject <name>', 'who or what the token is for (shown in logs)')
  .option('--description <text>', 'free-form note')
  .option('--deploy <outputs...>', 'deploy-only device token: reads exactly the closures of these outputs, e.g. acme/ethercalc/*#nixosConfigurations.web')
  .option('--cidr <cidrs>', 'comma-separated addresses/CIDRs the token may be used from')
  .option('--country <codes>', 'comma-separated ISO country codes the token may be used from')
  .option('--json', 'print JSON with id and expiry')
  .action(async (opts: { server?: string; org: string; scope: string; slice?: string; ttl: string; subject?: string; description?: string; deploy?: string[]; cidr?: string; country?: string; json?: boolean }) => {
    const scopes = opts.scope.split(',').map((s) => s.trim()).filter(Boolean);
    const bad = scopes.filter((s) => !['read', 'write', 'publish', 'admin'].includes(s));
    if (bad.length) throw new CliError(`unknown scope ${bad.join(', ')}: use read, write, publish or admin`);
    const res = await apiRequest<{ token: string; id: string; expiresAt: string }>(clientOptions(opts), 'POST', '/api/v1/tokens', {
      org: opts.org,
      scopes,
      ...(opts.slice ? { slices: opts.slice.split(',').map((s) => s.trim()).filter(Boolean) } : {}),
      ttl: opts.ttl,
      ...(opts.subject ? { subject: opts.subject } : {}),
      ...(opts.description ? { description: opts.description } : {}),
      ...(opts.deploy ? { deploy: opts.deploy } : {}),
      ...(opts.cidr ? { cidrs: opts.cidr.split(',').map((s) => s.trim()).filter(Boolean) } : {}),
      ...(opts.country ? { countries: opts.country.split(',').map((s) => s.trim()).filter(Boolean) } : {}),
    });
    console.log(opts.json ? JSON.stringify(res) : res.token);
  });
token
  .command('revoke [id]')
  .description('revoke a token by id (see `token create --json`), or every token of a subject')
  .addOption(serverOption())
  .option('--org <org>', 'with --subject: the org')
  .option('--subject <subject>', 'revoke every active token of this subject (e.g. a CI identity)')
  .action(async (id: string | undefined, opts: { server?: string; org?: string; subject?: string }) => {
    if (opts.subject) {
      if (!opts.org) throw new CliError('--subject needs --org');
      const res = await apiRequest<{ revoked: number }>(clientOptions(opts), 'POST', `/api/v1/orgs/${encodeURIComponent(opts.org)}/tokens/revoke`, { subject: opts.subject });
      console.log(`revoked ${res.revoked} token(s) of ${opts.subject}`);
      return;
    }
    if (!id) throw new CliError('give a token id, or --org ORG --subject SUBJECT');
    await apiRequest(clientOptions(opts), 'DELETE', `/api/v1/tokens/${encodeURIComponent(id)}`);
    console.log(`revoked ${id}`);
  });
token
  .command('list')
  .description("list an org's active tokens (ids, subjects, scopes, expiry; never the tokens)")
  .addOption(serverOption())
  .requiredOption('--org <org>', 'org')
  .option('--subject <subject>', 'only this subject')
  .option('--all', 'include expired and revoked tokens')
  .option('--json', 'print JSON')
  .action(async (opts: { server?: string; org: string; subject?: string; all?: boolean; json?: boolean }) => {
    const q = new URLSearchParams({ ...(opts.subject ? { subject: opts.subject } : {}), ...(opts.all ? { all: '1' } : {}) });
    const res = await apiRequest<{ tokens: Array<{ id: string; subject: string; scopes: string[]; expiresAt: string; revokedAt: string | null }> }>(
      clientOptions(opts),
      'GET',
      `/api/v1/orgs/${encodeURIComponent(opts.org)}/tokens?${q}`,
    );
    if (opts.json) return console.log(JSON.stringify(res.tokens));
    for (const t of res.tokens) console.log(`${t.id}  ${t.subject}  ${t.scopes.join(',')}  expires ${t.expiresAt}${t.revokedAt ? `  revoked ${t.revokedAt}` : ''}`);
  });

const keysCommand = program.command('keys').description("the server's token keys and each org's Nix signing keys");
keysCommand
  .command('rotate')
  .description("rotate an org's Nix signing key (--org, org admin: the old key keeps signing until retired), or the server's token key (server admin)")
  .addOption(serverOption())
  .option('--org <org>', "rotate this org's Nix signing key")
  .action(async (opts: { server?: string; org?: string }) => {
    if (opts.org) {
      const res = await apiRequest<{ active: { name: string; publicKey: string }; resigned: number; keys: string[] }>(clientOptions(opts), 'POST', `/api/v1/orgs/${encodeURIComponent(opts.org)}/keys/rotate`);
      console.log(`new signing key ${res.active.name} for ${opts.org}; ${res.resigned} narinfos re-signed with both keys`);
      console.log(`trust: ${res.keys.join(' ')}`);
      console.log(`once every machine trusts ${res.active.name}: floe keys retire --org ${opts.org} <old key name>`);
      return;
    }
    const res = await apiRequest<{ kid: string }>(clientOptions(opts), 'POST', '/api/v1/keys/rotate');
    console.log(`new signing key ${res.kid}; older keys keep verifying the tokens they signed`);
  });

const trust = program.command('trust').description('declare which CI and IdP identities belong to an org');
trust
  .command('add <org>')
  .description('add a trust from a JSON spec, e.g. {"provider":"github","ownerId":"123","refs":["refs/heads/main"],"scopes":["read","write"]}')
  .addOption(serverOption())
  .requiredOption('--spec <json-or-@file>', 'the trust as JSON, or @path to a JSON file')
  .action(async (orgName: string, opts: { server?: string; spec: string }) => {
    const text = opts.spec.startsWith('@') ? await readFile(opts.spec.slice(1), 'utf8') : opts.spec;
    let spec: unknown;
    try {
      spec = JSON.parse(text);
    } catch {
      throw new CliError('--spec is not valid JSON');
    }
    const res = await apiRequest<{ id: string; issuer: string; audience: string; status: string; message?: string }>(clientOptions(opts), 'POST', `/api/v1/orgs/${encodeURIComponent(orgName)}/trusts`, spec);
    if (res.status === 'pending') console.log(`trust ${res.id} is pending: ${res.message ?? 'it waits for the server admin'}`);
    else console.log(`added trust ${res.id}: tokens from ${res.issuer} with audience ${res.audience}`);
  });
trust
  .command('list <org>')
  .addOption(serverOption())
  .action(async (orgName: string, opts: { server?: string }) => {
    const res = await apiRequest<{ trusts: unknown[] }>(clientOptions(opts), 'GET', `/api/v1/orgs/${encodeURIComponent(orgName)}/trusts`);
    console.log(JSON.stringify(res.trusts, null, 2));
  });
trust
  .command('remove <org> <id>')
  .addOption(serverOption())
  .action(async (orgName: string, id: string, opts: { server?: string }) => {
    await apiRequest(clientOptions(opts), 'DELETE', `/api/v1/orgs/${encodeURIComponent(orgName)}/trusts/${encodeURIComponent(id)}`);
    console.log(`removed trust ${id}`);
  });

const upstream = program.command('upstream').description('upstream binary caches the server mirrors verified paths from (server admin)');
upstream
  .command('add <name> <url>')
  .description('trust an upstream cache: pushes then skip uploading paths it serves, signed by one of the keys')
  .addOption(serverOption())
  .requiredOption('--key <name:base64...>', 'public key(s) trusted for this upstream, as in nix.conf trusted-public-keys')
  .option('--pull-through', 'also fill the cache from this upstream on a narinfo miss')
  .option('--priority <n>', 'lower is asked first (default 50)')
  .option('--json', 'print JSON')
  .action(async (name: string, url: string, opts: { server?: string; key: string[]; pullThrough?: boolean; priority?: string; json?: boolean }) => {
    const res = await apiRequest<{ name: string; url: string }>(clientOptions(opts), 'POST', '/api/v1/upstreams', {
      name,
      url,
      publicKeys: opts.key,
      pullThrough: Boolean(opts.pullThrough),
      ...(opts.priority ? { priority: Number(opts.priority) } : {}),
    });
    console.log(opts.json ? JSON.stringify(res) : `added upstream ${res.name} (${res.url})`);
  });
upstream
  .command('list')
  .addOption(serverOption())
  .option('--json', 'print JSON')
  .action(async (opts: { server?: string; json?: boolean }) => {
    const res = await apiRequest<{ upstreams: Array<{ name: string; url: string; publicKeys: string[]; pullThrough: boolean; priority: number }> }>(clientOptions(opts), 'GET', '/api/v1/upstreams');
    if (opts.json) return console.log(JSON.stringify(res));
    for (const u of res.upstreams) console.log(`${u.name}\t${u.url}\tpriority ${u.priority}${u.pullThrough ? '\tpull-through' : ''}\t${u.publicKeys.join(' ')}`);
  });
upstream
  .command('remove <name>')
  .addOption(serverOption())
  .action(async (name: string, opts: { server?: string }) => {
    await apiRequest(clientOptions(opts), 'DELETE', `/api/v1/upstreams/${encodeURIComponent(name)}`);
    console.log(`removed upstream ${name} (paths already mirrored stay)`);
  });

const pin = program.command('pin').description('named GC roots of an org');
pin
  .command('add <org> <name> <store-path>')
  .description('keep a store path and its closure in every slice of the org that holds it')
  .addOption(serverOption())
  .option('--ttl <duration>', 'the pin expires after this long (e.g. 90d); default: never')
  .option('--json', 'print JSON')
  .action(async (orgName: string, name: string, storePath: string, opts: { server?: string; ttl?: string; json?: boolean }) => {
    const res = await apiRequest<{ name: string; storePath: string; expiresAt: string | null }>(clientOptions(opts), 'POST', `/api/v1/orgs/${encodeURIComponent(orgName)}/pins`, {
      name,
      storePath,
      ...(opts.ttl ? { ttl: opts.ttl } : {}),
    });
    console.log(opts.json ? JSON.stringify(res) : `pinned ${res.storePath} as ${orgName}/${res.name}${res.expiresAt ? ` until ${res.expiresAt}` : ''}`);
  });
pin
  .command('list <org>')
  .addOption(serverOption())
  .option('--json', 'print JSON')
  .action(async (orgName: string, opts: { server?: string; json?: boolean }) => {
    const res = await apiRequest<{ pins: Array<{ name: string; storePath: string; expiresAt: string | null }> }>(clientOptions(opts), 'GET', `/api/v1/orgs/${encodeURIComponent(orgName)}/pins`);
    if (opts.json) return console.log(JSON.stringify(res));
    for (const p of res.pins) console.log(`${p.name}\t${p.storePath}\t${p.expiresAt ?? 'no expiry'}`);
  });
pin
  .command('remove <org> <name>')
  .addOption(serverOption())
  .action(async (orgName: string, name: string, opts: { server?: string }) => {
    await apiRequest(clientOptions(opts), 'DELETE', `/api/v1/orgs/${encodeURIComponent(orgName)}/pins/${encodeURIComponent(name)}`);
    console.log(`removed pin ${orgName}/${name}`);
  });

org
  .command('set <org>')
  .description('retention (org admin) and quota (server admin) of an org')
  .addOption(serverOption())
  .option('--retention <duration>', 'pushes younger than this are GC roots, e.g. 30d; "forever" to keep every push')
  .option('--quota <size>', 'most deduplicated stored bytes, e.g. 50G; "none" for unlimited')
  .option('--json', 'print JSON')
  .action(async (orgName: string, opts: { server?: string; retention?: string; quota?: string; json?: boolean }) => {
    if (opts.retention === undefined && opts.quota === undefined) throw new CliError('say what to set: --retention and/or --quota');
    const res = await apiRequest<{ retentionSeconds: number | null; quotaBytes: number | null }>(clientOptions(opts), 'PATCH', `/api/v1/orgs/${encodeURIComponent(orgName)}/settings`, {
      ...(opts.retention !== undefined ? { retention: opts.retention === 'forever' ? null : opts.retention } : {}),
      ...(opts.quota !== undefined ? { quota: opts.quota === 'none' ? null : opts.quota } : {}),
    });
    console.log(opts.json ? JSON.stringify(res) : `${orgName}: retention ${res.retentionSeconds === null ? 'forever' : `${res.retentionSeconds}s`}, quota ${res.quotaBytes === null ? 'none' : fmtSize(res.quotaBytes)}`);
  });

function fmtSize(n: number): string {
  return n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(2)} GiB` : n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`;
}

program
  .command('usage <org>')
  .description('storage used by an org and each of its slices: logical (sum of NAR sizes) and stored (distinct NARs, compressed)')
  .addOption(serverOption())
  .option('--json', 'print JSON')
  .action(async (orgName: string, opts: { server?: string; json?: boolean }) => {
    type SliceUse = { name: string; paths: number; logicalBytes: number; storedBytes: number };
    const res = await apiRequest<SliceUse & { org: string; quotaBytes: number | null; retentionSeconds: number | null; slices: SliceUse[] }>(clientOptions(opts), 'GET', `/api/v1/orgs/${encodeURIComponent(orgName)}/usage`);
    if (opts.json) return console.log(JSON.stringify(res));
    console.log(`${res.org}: ${res.paths} paths, ${fmtSize(res.logicalBytes)} logical, ${fmtSize(res.storedBytes)} stored${res.quotaBytes !== null ? ` of ${fmtSize(res.quotaBytes)} quota (${Math.round((100 * res.storedBytes) / Math.max(res.quotaBytes, 1))}%)` : ''}`);
    for (const sl of res.slices) console.log(`  ${sl.name}\t${sl.paths} paths\t${fmtSize(sl.logicalBytes)} logical\t${fmtSize(sl.storedBytes)} stored`);
  });

program
  .command('gc')
  .description('garbage-collect the server: keep what releases, pins and recent pushes reach; reclaim the rest (server admin)')
  .addOption(serverOption())
  .option('--dry-run', 'report what would be removed, remove nothing')
  .option('--grace <duration>', "nothing younger than this is removed (default: the server's FLOE_GC_GRACE, 1h)")
  .option('--json', 'print JSON')
  .action(async (opts: { server?: string; dryRun?: boolean; grace?: string; json?: boolean }) => {
    type Report = {
      dryRun: boolean;
      roots: number;
      paths: { total: number; kept: number; collected: number; logicalBytes: number };
      nars: { collected: number; storedBytes: number };
      orphanBlobs: { collected: number; bytes: number };
      expired: { narUploads: number; releaseUploads: number; pins: number };
      sample: string[];
      durationMs: number;
    };
    const r = await apiRequest<Report>(clientOptions(opts), 'POST', '/api/v1/gc', { dryRun: Boolean(opts.dryRun), ...(opts.grace ? { grace: opts.grace } : {}) });
    if (opts.json) return console.log(JSON.stringify(r));
    const verb = r.dryRun ? 'would remove' : 'removed';
    console.log(`${r.roots} roots; ${r.paths.kept} of ${r.paths.total} path rows kept; ${verb} ${r.paths.collected} path rows (${fmtSize(r.paths.logicalBytes)} logical)`);
    console.log(`${verb} ${r.nars.collected} NARs (${fmtSize(r.nars.storedBytes)} stored) and ${r.orphanBlobs.collected} orphan blobs (${fmtSize(r.orphanBlobs.bytes)})`);
    if (!r.dryRun) console.log(`expired: ${r.expired.narUploads} upload records, ${r.expired.releaseUploads} staged releases, ${r.expired.pins} pins`);
    for (const line of r.sample) console.log(`  ${line}`);
  });

const cache = program.command('cache').description('binary cache');
cache
  .command('info')
  .description('print the nix.conf lines that use this cache')
  .addOption(serverOption())
  .option('--org <org>', "an org's keys instead of those of your token's view")
  .option('--json', 'print JSON')
  .action(async (opts: { server?: string; json?: boolean; org?: string }) => {
    const res = await apiRequest<{ substituter: string; publicKey: string; nixConf: string }>(clientOptions(opts), 'GET', `/api/v1/cache/info${opts.org ? `?org=${encodeURIComponent(opts.org)}` : ''}`);
    process.stdout.write(opts.json ? `${JSON.stringify(res)}\n` : res.nixConf);
  });

cache
  .command('use')
  .description('add this cache to nix.conf (substituter + trusted key); `floe login` also adds the netrc')
  .addOption(serverOption())
  .option('--nix-conf <file>', 'nix.conf to update (default: $XDG_CONFIG_HOME/nix/nix.conf)')
  .option('--print', 'print the lines instead')
  .option('--org <org>', "trust an org's keys instead of those of your token's view")
  .action(async (opts: { server?: string; nixConf?: string; print?: boolean; org?: string }) => {
    const client = clientOptions(opts);
    const info = await apiRequest<{ substituter: string; publicKey: string }>(opts.org ? { ...client, token: undefined } : client, 'GET', `/api/v1/cache/info${opts.org ? `?org=${encodeURIComponent(opts.org)}` : ''}`);
    if (!info.publicKey) throw new CliError('no keys to trust: your view holds no slice; log in first (floe login), or name an org with --org');
    const lines = [`extra-substituters = ${info.substituter}`, `extra-trusted-public-keys = ${info.publicKey}`];
    if (opts.print) return console.log(lines.join('\n'));
    const file = path.resolve(opts.nixConf ?? path.join(nixConfigDir(), 'nix.conf'));
    let current = '';
    try {
      current = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    // Keep a netrc-file line a previous `floe login` wrote into the same block.
    const netrcLine = new RegExp(`# >>> floe ${new URL(client.server).hostname.replace(/[.]/g, '\\.')} [\\s\\S]*?(netrc-file = .*)`).exec(current)?.[1];
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, upsertNixConfBlock(current, new URL(client.server).hostname, netrcLine ? [...lines, netrcLine] : lines));
    console.error(`floe: ${info.substituter} added to ${file}`);
  });

registerPolicyCommands(program, serverOption);
registerSourceCommands(program, { serverOption, keys: keysCommand, trust, slice });
registerWatchCommands(program, serverOption);

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof CliError || err instanceof FloeError) {
    process.stderr.write(`floe: ${err.message}\n`);
    process.exit(1);
  }
  process.stderr.write(`floe: unexpected error: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
