/**
 * `floe login`: trade the machine's native identity for a short-lived Floe token, then write the
 * netrc entry (0600, only Floe's own entry is replaced) and the nix.conf lines that use it.
 * Over 350 lines: every identity's login ends in the same file writes (netrc, nix.conf, the
 * daemon's files with --system, fh's auth file) and `floe logout` undoes exactly those.
 */
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  CliError,
  FloeApi,
  apiRequest,
  cliConfigFile,
  nixConfigDir,
  readCliConfig,
  type CliConfig,
  type ClientOptions,
  type RenewableLogin,
} from './client.js';
import type { CommandContext } from './commands/context.js';
import { NetrcError, removeNetrcEntry, upsertNetrcEntry, upsertNixConfBlock } from './netrc.js';
import {
  DAEMON_SOCKET,
  adminInstructions,
  cacheConfLines,
  existingNetrcFile,
  nixMode,
  removeNixConfBlock,
} from './nix-setup.js';

export interface LoginOutputOptions {
  netrc?: string;
  nixConf?: string | false;
  /** Multi-user Nix, as root: the files the nix-daemon reads. */
  system?: boolean;
  print?: boolean;
  json?: boolean;
  /** Also write the token where `fh` (the FlakeHub CLI) reads its own: fh then works against Floe. */
  fh?: boolean;
}

type Exchanged = import('./client.js').Exchanged;

/**
 * Temp file + rename in the same directory: readers (Nix, magic-nix-cache, inotify watchers) see the
 * old or the new file, never half of one. netrc files are 0600 whatever they were.
 */
export async function writeAtomic(file: string, text: string, mode: number): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.floe-${process.pid}-${Date.now()}`;
  await writeFile(tmp, text, { mode });
  await chmod(tmp, mode);
  await rename(tmp, file);
}
const writePrivate = (file: string, text: string) => writeAtomic(file, text, 0o600);

async function keepMode(file: string, fallback: number): Promise<number> {
  try {
    return (await stat(file)).mode & 0o777;
  } catch {
    return fallback;
  }
}

async function readOrEmpty(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw err;
  }
}

export async function exchangeIdentity(
  client: ClientOptions,
  idToken: string,
  opts: { org?: string; ttl?: string },
): Promise<Exchanged> {
  return apiRequest<Exchanged>({ ...client, token: undefined }, 'POST', '/api/v1/auth/exchange', {
    token: idToken,
    ...(opts.org ? { org: opts.org } : {}),
    ...(opts.ttl ? { ttl: opts.ttl } : {}),
  });
}

/** The audience CI tokens must be minted for (the server tells). */
export async function serverAudience(client: ClientOptions): Promise<string> {
  const info = await apiRequest<{ audience: string }>({ ...client, token: undefined }, 'GET', '/api/v1/auth/info');
  return info.audience;
}

/** GitHub Actions: ask the runner for an OIDC token with our audience (needs `permissions: id-token: write`). */
export async function githubActionsIdToken(audience: string): Promise<string> {
  const url = process.env.ACTIONS_ID_TOKEN_REQUEST_URL;
  const bearer = process.env.ACTIONS_ID_TOKEN_REQUEST_TOKEN;
  if (!url || !bearer) {
    throw new CliError(
      'not in a GitHub Actions job that may request OIDC tokens: add `permissions: id-token: write` to the workflow or job',
    );
  }
  let res: Response;
  try {
    res = await fetch(`${url}${url.includes('?') ? '&' : '?'}audience=${encodeURIComponent(audience)}`, {
      headers: { Authorization: `Bearer ${bearer}`, Accept: 'application/json' },
    });
  } catch (err) {
    throw new CliError(`cannot reach the GitHub Actions token service: ${(err as Error).message}`);
  }
  if (!res.ok)
    throw new CliError(`the GitHub Actions token service answered ${res.status}; check the job's id-token permission`);
  const body = (await res.json()) as { value?: string };
  if (!body.value) throw new CliError('the GitHub Actions token service returned no token');
  return body.value;
}

/** Where the nix-daemon reads its configuration (Nix honours NIX_CONF_DIR too). */
export function systemConfDir(): string {
  return process.env.NIX_CONF_DIR || '/etc/nix';
}

function detectNix() {
  const socket = process.env.NIX_DAEMON_SOCKET_PATH || DAEMON_SOCKET;
  return nixMode(process.env, socket, existsSync(socket));
}

const isRoot = () => typeof process.getuid === 'function' && process.getuid() === 0;

async function writeCliConfig(config: CliConfig): Promise<void> {
  await writeAtomic(cliConfigFile(), `${JSON.stringify(config, null, 2)}\n`, 0o600);
}

/** Where fh reads its token when no determinate-nixd runs (fh `user_auth_token_read_path`). */
export function fhAuthFile(): string {
  return path.join(process.env.XDG_CONFIG_HOME || path.join(os.homedir(), '.config'), 'flakehub', 'auth');
}

/**
 * Writes `token` to fh's auth file (0600, atomically). A token already there that is not ours (a
 * FlakeHub login) is moved aside once, for `floe logout` to put back byte for byte.
 */
async function saveFhToken(token: string, before: CliConfig['fh']): Promise<NonNullable<CliConfig['fh']>> {
  const file = fhAuthFile();
  const ours = before?.file === file;
  let backup = ours ? before.backup : undefined;
  if (!ours && existsSync(file)) {
    backup = `${file}.before-floe`;
    await rename(file, backup);
  }
  await writePrivate(file, `${token}\n`);
  return { file, ...(backup ? { backup } : {}) };
}

/** Undoes `saveFhToken`: the file floe wrote goes, what was there before comes back. */
async function removeFhToken(fh: NonNullable<CliConfig['fh']>): Promise<string | undefined> {
  if (fh.backup && existsSync(fh.backup)) {
    await rename(fh.backup, fh.file);
    return `restored ${fh.file}`;
  }
  if (!existsSync(fh.file)) return undefined;
  await unlink(fh.file);
  return `deleted ${fh.file}`;
}

/**
 * Writes (or prints) the netrc entry and nix.conf lines for `token`, and remembers the server (and,
 * for a login that can be repeated, how: `renewable`, which the watchers and `--refresh` use).
 */
export async function saveLogin(
  ctx: CommandContext,
  client: ClientOptions,
  result: Exchanged,
  opts: LoginOutputOptions,
  renewable?: Omit<RenewableLogin, 'output'>,
): Promise<void> {
  const host = new URL(client.server).hostname;
  // The keys of the view of the token just obtained: exactly the sources it will substitute from.
  const info = await new FloeApi({ ...client, token: result.token }).cacheInfo();
  const nix = detectNix();
  if (opts.system && !isRoot())
    throw new CliError(`--system writes ${systemConfDir()} for the nix-daemon: run it as root (sudo)`);
  const confDir = systemConfDir();
  const nixConfFile = opts.system
    ? path.join(confDir, 'nix.conf')
    : opts.nixConf !== false
      ? path.resolve(opts.nixConf ?? path.join(nixConfigDir(), 'nix.conf'))
      : undefined;
  const currentConf = nixConfFile ? await readOrEmpty(nixConfFile) : '';
  // Join an existing netrc-file setting instead of replacing it (Nix keeps only one).
  const joined = opts.netrc ? undefined : existingNetrcFile(currentConf, host);
  const netrcFile = path.resolve(
    opts.netrc ?? joined ?? (opts.system ? path.join(confDir, 'netrc') : path.join(nixConfigDir(), 'netrc')),
  );
  const lines = cacheConfLines(info, joined ? undefined : netrcFile);
  if (opts.print) {
    ctx.io.stdout.write(
      `# netrc (${netrcFile}, mode 0600):\nmachine ${host} login floe password ${result.token}\n# nix.conf:\n${lines.join('\n')}\n`,
    );
    return;
  }
  const netrcExisted = existsSync(netrcFile);
  try {
    await writePrivate(netrcFile, upsertNetrcEntry(await readOrEmpty(netrcFile), host, result.token));
  } catch (err) {
    if (err instanceof NetrcError) throw new CliError(`${netrcFile}: ${err.message}`);
    throw err;
  }
  let include: string | undefined;
  if (opts.system) {
    // A managed include the daemon reads; nix.conf itself gets only the one line that includes it.
    include = path.join(confDir, `floe-${host}.conf`);
    await writeAtomic(
      include,
      `# managed by floe login --system; floe logout --system removes it\n${lines.join('\n')}\n`,
      0o644,
    );
    await writeAtomic(
      nixConfFile!,
      upsertNixConfBlock(currentConf, host, [`!include ${path.basename(include)}`]),
      await keepMode(nixConfFile!, 0o644),
    );
  } else if (nixConfFile) {
    await writeAtomic(nixConfFile, upsertNixConfBlock(currentConf, host, lines), await keepMode(nixConfFile, 0o644));
  }
  const previous = readCliConfig();
  const config: CliConfig = {
    ...(previous.server === client.server ? previous : {}),
    server: client.server,
    ...(result.org ? { org: result.org } : {}),
  };
  if (opts.fh) config.fh = await saveFhToken(result.token, config.fh);
  delete config.login;
  if (renewable) {
    const output: RenewableLogin['output'] = {
      ...(opts.netrc ? { netrc: path.resolve(opts.netrc) } : {}),
      ...(opts.nixConf !== undefined
        ? { nixConf: opts.nixConf === false ? (false as const) : path.resolve(opts.nixConf) }
        : {}),
      ...(opts.system ? { system: true } : {}),
      ...(opts.fh ? { fh: true } : {}),
    };
    config.login = {
      method: renewable.method,
      ...(renewable.org ? { org: renewable.org } : {}),
      ...(renewable.ttl ? { ttl: renewable.ttl } : {}),
      output,
    };
  }
  if (opts.system) {
    const again = config.system?.netrc === netrcFile && config.system.createdNetrc;
    config.system = {
      netrc: netrcFile,
      nixConf: nixConfFile!,
      include: include!,
      createdNetrc: !netrcExisted || again === true,
    };
  } else {
    const again = config.netrc === netrcFile && config.createdNetrc === true;
    Object.assign(config, { netrc: netrcFile, createdNetrc: !netrcExisted || again });
    if (nixConfFile) config.nixConf = nixConfFile;
  }
  await writeCliConfig(config);
  const summary = {
    org: result.org ?? null,
    subject: result.subject ?? null,
    scopes: result.scopes ?? null,
    expiresAt: result.expiresAt ?? null,
    netrc: netrcFile,
    nixConf: nixConfFile ?? null,
    substituter: info.substituter,
    multiUser: nix.multiUser,
    system: Boolean(opts.system),
  };
  if (opts.json) ctx.out(JSON.stringify(summary));
  else {
    ctx.err(
      `floe: logged in${result.org ? ` to ${result.org}` : ''}${result.subject ? ` as ${result.subject}` : ''}` +
        `${result.scopes ? ` (${result.scopes.join(', ')})` : ''}${result.expiresAt ? `, until ${result.expiresAt}` : ''}\n` +
        `floe: token written to ${netrcFile}${joined ? ' (the file your netrc-file setting names)' : ''}` +
        `${include ? `; nix.conf includes ${include}` : nixConfFile ? `; nix.conf lines in ${nixConfFile}` : ''}`,
    );
  }
  if (opts.fh && !opts.json) {
    const api = client.server;
    ctx.err(
      `floe: token also written to ${config.fh!.file} for fh; point fh at this server with ` +
        `FH_API_ADDR=${api} FH_FRONTEND_ADDR=${api} FH_CACHE_ADDR=${api}/cache`,
    );
  }
  if (opts.system) {
    ctx.err(
      `floe: the nix-daemon reads nix.conf when it starts: restart it for the cache to apply (systemctl restart nix-daemon; macOS: launchctl kickstart -k system/org.nixos.nix-daemon). Nothing was restarted.`,
    );
  } else if (nix.multiUser && !isRoot()) {
    const systemConf = await readOrEmpty(path.join(confDir, 'nix.conf'));
    // The same login for the admin to repeat, never with a token in it (`--token floe_…` becomes `--token -`).
    const args = process.argv.slice(2).filter((a) => !['--json', '--print'].includes(a));
    const loginCommand = [
      'floe',
      ...args.map((a, i) =>
        args[i - 1] === '--token' && a !== '-' ? '-' : a.startsWith('--token=') ? '--token=-' : a,
      ),
    ].join(' ');
    ctx.err(
      `floe: ${adminInstructions({ c: info, host, confDir, netrcFile: existingNetrcFile(systemConf, host), user: os.userInfo().username, loginCommand })}`.replace(
        /\n/g,
        '\nfloe: ',
      ),
    );
  }
}

export interface LogoutOptions {
  netrc?: string;
  nixConf?: string;
  system?: boolean;
}

async function removeEntry(file: string, host: string, deleteIfEmpty: boolean): Promise<boolean> {
  const text = await readOrEmpty(file);
  if (!text.split(/\s+/).some((t, i, all) => t === 'machine' && all[i + 1] === host)) return false;
  const rest = removeNetrcEntry(text, host);
  if (deleteIfEmpty && rest.trim() === '') await unlink(file);
  else await writePrivate(file, rest);
  return true;
}

async function removeBlock(file: string, host: string): Promise<boolean> {
  const text = await readOrEmpty(file);
  const rest = removeNixConfBlock(text, host);
  if (rest === text) return false;
  await writeAtomic(file, rest, await keepMode(file, 0o644));
  return true;
}

/** Undoes `saveLogin`: exactly the netrc entry, nix.conf block and include it added; revokes the token. */
export async function logout(ctx: CommandContext, client: ClientOptions, opts: LogoutOptions): Promise<void> {
  const host = new URL(client.server).hostname;
  const config = readCliConfig();
  const mine = config.server === client.server ? config : {};
  const removed: string[] = [];
  if (client.token) {
    try {
      const res = await new FloeApi(client).logout();
      if ((res as { revoked?: boolean }).revoked) removed.push('revoked the token');
    } catch (err) {
      ctx.err(`floe: could not revoke the token (${(err as Error).message}); removing it locally`);
    }
  }
  if (opts.system) {
    if (!isRoot()) throw new CliError(`--system edits ${systemConfDir()}: run it as root (sudo)`);
    const sys = mine.system;
    const nixConf = opts.nixConf ?? sys?.nixConf ?? path.join(systemConfDir(), 'nix.conf');
    if (await removeBlock(nixConf, host)) removed.push(`removed the include from ${nixConf}`);
    const include = sys?.include ?? path.join(systemConfDir(), `floe-${host}.conf`);
    if (existsSync(include)) {
      await unlink(include);
      removed.push(`deleted ${include}`);
    }
    const netrc = opts.netrc ?? sys?.netrc ?? path.join(systemConfDir(), 'netrc');
    if (await removeEntry(netrc, host, Boolean(sys?.createdNetrc))) removed.push(`removed ${host} from ${netrc}`);
  } else {
    const netrc = path.resolve(opts.netrc ?? mine.netrc ?? path.join(nixConfigDir(), 'netrc'));
    if (await removeEntry(netrc, host, Boolean(mine.createdNetrc))) removed.push(`removed ${host} from ${netrc}`);
    const nixConf = path.resolve(opts.nixConf ?? mine.nixConf ?? path.join(nixConfigDir(), 'nix.conf'));
    if (await removeBlock(nixConf, host)) removed.push(`removed the cache lines from ${nixConf}`);
  }
  if (!opts.system && mine.fh) {
    const done = await removeFhToken(mine.fh);
    if (done) removed.push(done);
  }
  if (config.server === client.server) {
    const { system, ...user } = config;
    const keep = opts.system
      ? user
      : system
        ? { server: config.server, ...(config.org ? { org: config.org } : {}), system }
        : undefined;
    if (keep) await writeCliConfig(keep);
    else await unlink(cliConfigFile()).catch(() => undefined);
    removed.push(keep ? 'updated the remembered login' : `forgot ${client.server}`);
  }
  ctx.err(
    removed.length
      ? `floe: logged out of ${client.server}: ${removed.join('; ')}`
      : `floe: nothing of a login to ${client.server} found here`,
  );
  if (opts.system && removed.length)
    ctx.err('floe: restart the nix-daemon for it to stop using the cache (nothing was restarted)');
}
