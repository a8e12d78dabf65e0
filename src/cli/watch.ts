/**
 * `floe watch-store` and `floe watch-exec`: push what appears in the Nix store, built or fetched.
 *
 * New paths are found by a store diff (the entries of the store directory compared with a
 * baseline, then confirmed valid by Nix itself), not by a post-build-hook: a hook misses paths that
 * were substituted rather than built, and needs root to install. Reading the directory is cheap
 * enough to poll every second, works with Nix 2.8 and later, single- or multi-user, and needs no
 * access to the daemon's database. Each new path goes into the local queue (queue.ts) before
 * anything is pushed, so a killed watcher loses nothing it had recorded; draining uses `floe push`,
 * whose missing query skips paths the cache has and paths the server mirrors from its upstreams.
 * Over 350 lines: the two commands share the diff, the queue, the drain and the login renewal, so
 * they change together.
 */
import { spawn } from 'node:child_process';
import { readFile, readdir, rename, writeFile } from 'node:fs/promises';
import { constants } from 'node:os';
import path from 'node:path';
import type { Command, Option } from 'commander';
import { CliError, CliExit, clientOptions, type ClientOptions } from './client.js';
import { push, runNixCommand } from './push.js';
import { keepLoginFresh, rememberedRenewable, tokenTimes, type FreshLogin } from './refresh.js';
import { PushQueue, defaultQueueFile, keyOf, type QueuedPath } from './queue.js';
import { WATCH_DURATION, parseDurationMs } from '../units.js';

const NIX32 = '0123456789abcdfghijklmnpqrsvwxyz';
const STORE_NAME = new RegExp(`^[${NIX32}]{32}-[A-Za-z0-9+\\-._?=]+$`);

/**
 * PURE: whether a store directory entry is a path worth pushing. Derivations are left out (they
 * are evaluation results, not outputs, as cachix and magic-nix-cache do), and so are Nix's own
 * lock and build-check files.
 */
export function isPushableName(name: string): boolean {
  return STORE_NAME.test(name) && !/\.(drv|lock|chroot|check)$/.test(name);
}

export const storeDir = () => process.env.NIX_STORE_DIR || '/nix/store';

/** Those of `paths` that Nix does not (or no longer) consider valid. */
async function invalidPaths(paths: string[]): Promise<Set<string>> {
  const invalid = new Set<string>();
  for (let i = 0; i < paths.length; i += 500) {
    const out = await runNixCommand('nix-store', ['--check-validity', '--print-invalid', ...paths.slice(i, i + 500)]);
    for (const line of out.split('\n')) if (line) invalid.add(line);
  }
  return invalid;
}

/** The store diff: what became valid since the baseline. */
export class StoreDiff {
  private readonly known = new Set<string>();
  constructor(readonly dir: string) {}

  private async names(): Promise<string[]> {
    try {
      return (await readdir(this.dir)).filter(isPushableName);
    } catch (err) {
      throw new CliError(`cannot read the Nix store ${this.dir}: ${(err as Error).message}`);
    }
  }

  /**
   * Takes the baseline; with a file, reuses the one saved there (so a later `--drain` can still
   * find what appeared after the watcher died), else saves it there (temp file + rename).
   */
  async baseline(file?: string): Promise<number> {
    if (file) {
      try {
        for (const n of (await readFile(file, 'utf8')).split('\n')) if (n) this.known.add(n);
        return this.known.size;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
          throw new CliError(`cannot read the baseline ${file}: ${(err as Error).message}`);
      }
    }
    for (const n of await this.names()) this.known.add(n);
    if (file) {
      await writeFile(`${file}.tmp`, [...this.known].join('\n') + '\n');
      await rename(`${file}.tmp`, file);
    }
    return this.known.size;
  }

  /** New valid paths; entries not valid yet (a build or download in progress) are looked at again next time. */
  async poll(): Promise<string[]> {
    const fresh = (await this.names()).filter((n) => !this.known.has(n)).map((n) => path.join(this.dir, n));
    if (fresh.length === 0) return [];
    const invalid = await invalidPaths(fresh);
    const valid = fresh.filter((p) => !invalid.has(p));
    for (const p of valid) this.known.add(path.basename(p));
    return valid;
  }
}

export interface DrainSummary {
  /** NARs uploaded (queued paths and the parts of their closures the cache lacked). */
  pushed: number;
  /** Already in the cache, fetched by the server from its upstreams, or no longer in the local store. */
  skipped: number;
  /** Queued paths given up on in this run; they stay queued for the next drain. */
  failed: Array<{ path: string; error: string }>;
  /** Paths still in the queue. */
  left: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Pushes the queue's paths until it is empty or every remaining path failed `maxAttempts` times in this run. */
export async function drainQueue(
  queue: PushQueue,
  client: ClientOptions,
  opts: {
    jobs: number;
    maxAttempts?: number;
    log: (line: string) => void;
    /** Renews the login after a 401 to a request made with this token (see `FreshLogin.renewNow`). */
    renew?: (rejected: string | undefined) => Promise<boolean>;
  },
): Promise<DrainSummary> {
  const maxAttempts = opts.maxAttempts ?? 3;
  const summary: DrainSummary = { pushed: 0, skipped: 0, failed: [], left: 0 };
  const givenUp = new Set<string>();
  const tries = new Map<string, number>();
  for (let round = 0; ; round++) {
    const rows = queue.pending(500, givenUp);
    if (rows.length === 0) break;
    let anyFailed = false;
    let renewed = false;
    for (const [slice, group] of groupBySlice(rows)) {
      const invalid = await invalidPaths(group.map((r) => r.path));
      const gone = group.filter((r) => invalid.has(r.path));
      queue.done(gone);
      summary.skipped += gone.length;
      const live = group.filter((r) => !invalid.has(r.path));
      if (live.length === 0) continue;
      let errors: Map<string, string>;
      let unauthorized = false;
      const used = client.token;
      try {
        const result = await push(
          client,
          live.map((r) => r.path),
          { ...(slice ? { slice } : {}), jobs: opts.jobs, progress: (line) => opts.log(line) },
        );
        summary.pushed += result.uploaded;
        summary.skipped += result.present + result.mirrored;
        errors = new Map(result.failed.map((f) => [f.path, f.error]));
        unauthorized = result.failed.some((f) => f.status === 401);
      } catch (err) {
        if (!(err instanceof CliError)) throw err;
        errors = new Map(live.map((r) => [r.path, err.message]));
        unauthorized = err.status === 401;
      }
      // The token died before its scheduled renewal: renew now, retry without the round's pause.
      if (unauthorized && opts.renew && (await opts.renew(used))) renewed = true;
      queue.done(live.filter((r) => !errors.has(r.path)));
      const bad = live.filter((r) => errors.has(r.path)).map((r) => ({ ...r, error: errors.get(r.path)! }));
      if (bad.length === 0) continue;
      anyFailed = true;
      queue.failed(bad);
      for (const r of bad) {
        const n = (tries.get(keyOf(r)) ?? 0) + 1;
        tries.set(keyOf(r), n);
        if (n < maxAttempts) continue;
        givenUp.add(keyOf(r));
        summary.failed.push({ path: r.path, error: r.error });
      }
      opts.log(
        `${bad.length} path(s) failed (${bad[0]!.error})${bad.some((r) => !givenUp.has(keyOf(r))) ? '; retrying' : ''}`,
      );
    }
    if (anyFailed && !renewed) await sleep(Math.min(1000 * 2 ** round, 10_000));
  }
  summary.left = queue.size();
  return summary;
}

function groupBySlice(rows: QueuedPath[]): Map<string, QueuedPath[]> {
  const groups = new Map<string, QueuedPath[]>();
  for (const r of rows) groups.set(r.slice, [...(groups.get(r.slice) ?? []), r]);
  return groups;
}

interface WatchOpts {
  server?: string;
  slice?: string;
  queue?: string;
  interval: string;
  baseline?: string;
  jobs: string;
  timeout: string;
  json?: boolean;
}

const log =
  (cmd: string) =>
  (line: string): void =>
    void process.stderr.write(`floe ${cmd}: ${line}\n`);

function checkOpts(opts: WatchOpts): { jobs: number; interval: number; timeout: number } {
  const jobs = Number(opts.jobs);
  if (!Number.isInteger(jobs) || jobs < 1 || jobs > 64) throw new CliError('--jobs must be between 1 and 64');
  if (opts.slice && !/^[a-z0-9][a-z0-9_-]*\/[a-z0-9][a-z0-9_-]*$/.test(opts.slice))
    throw new CliError('--slice must look like org/slice');
  return {
    jobs,
    interval: parseDurationMs(opts.interval, '--interval', WATCH_DURATION),
    timeout: parseDurationMs(opts.timeout, '--timeout', WATCH_DURATION),
  };
}

function report(cmd: string, s: DrainSummary, json: boolean | undefined): void {
  if (json) process.stdout.write(`${JSON.stringify(s)}\n`);
  log(cmd)(
    `${s.pushed} pushed, ${s.skipped} skipped (already in the cache, mirrored from an upstream or gone from the store), ${s.failed.length} failed; ${s.left} left in the queue`,
  );
  for (const f of s.failed.slice(0, 10)) log(cmd)(`${f.path}: ${f.error}`);
}

/**
 * A watcher outlives its token (a long CI job, a build machine): when the token came from a
 * remembered login that can be repeated (`floe login github-action` / `aws`), it logs in again
 * before expiry, and at once when a push is answered 401 (the token expired early or was revoked),
 * pushes with the new token and rewrites the netrc for Nix. A FLOE_TOKEN from the environment is
 * the caller's to manage.
 */
async function keepFresh(cmd: string, client: ClientOptions): Promise<FreshLogin | undefined> {
  if (process.env.FLOE_TOKEN?.trim() || !client.token) return undefined;
  const login = rememberedRenewable(client.server);
  const times = tokenTimes(client.token);
  if (!login || !times) return undefined;
  log(cmd)(
    `the ${login.method} login is renewed before it expires (${new Date(times.expiresAt).toISOString()}) and on a 401`,
  );
  return keepLoginFresh(client, login, { times, before: 10 * 60_000, log: log(cmd) });
}

const renewing = (fresh: FreshLogin | undefined) =>
  fresh ? { renew: (rejected: string | undefined) => fresh.renewNow(rejected) } : {};

/** Drains with a deadline; on timeout the queue keeps what is left (uploads in flight are cut). */
async function drainWithin(
  cmd: string,
  queue: PushQueue,
  client: ClientOptions,
  jobs: number,
  timeout: number,
  fresh?: FreshLogin,
): Promise<DrainSummary | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), timeout)));
  try {
    return await Promise.race([drainQueue(queue, client, { jobs, log: log(cmd), ...renewing(fresh) }), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Records new store paths every `interval` and drains in the background; `stop()` records one last
 * time and resolves once the loop is idle (a drain in flight is left to finish or be abandoned).
 */
function watchLoop(
  cmd: string,
  queue: PushQueue,
  client: ClientOptions,
  slice: string,
  jobs: number,
  interval: number,
  baselineFile?: string,
  fresh?: FreshLogin,
) {
  const diff = new StoreDiff(storeDir());
  let stopping = false;
  let wake: () => void = () => {};
  let draining: Promise<void> | undefined;
  let lastDrain = 0;
  const record = async () => {
    const fresh = await diff.poll();
    if (fresh.length === 0) return 0;
    const n = queue.record(fresh, slice);
    log(cmd)(`recorded ${fresh.length} new store path(s)`);
    // Test hook: die the hard way right after recording, as a runner killing the job would.
    if (process.env.FLOE_WATCH_TEST_CRASH_AFTER_RECORD === '1') process.kill(process.pid, 'SIGKILL');
    return n;
  };
  const maybeDrain = (recorded: number) => {
    // A failing queue is retried every 30 s, not every poll.
    if (draining || queue.size() === 0 || (recorded === 0 && Date.now() - lastDrain < 30_000)) return;
    lastDrain = Date.now();
    draining = drainQueue(queue, client, { jobs, log: log(cmd), ...renewing(fresh) })
      .then((s) => {
        if (s.pushed + s.failed.length > 0)
          log(cmd)(`${s.pushed} pushed, ${s.skipped} skipped, ${s.failed.length} failed; ${s.left} left in the queue`);
      })
      .catch((err: Error) => log(cmd)(`push failed: ${err.message}`))
      .finally(() => (draining = undefined));
  };
  let loop: Promise<void> = Promise.resolve();
  return {
    /** Takes the baseline, then polls (the first time after one interval), draining anything already queued. */
    async start(): Promise<number> {
      const known = await diff.baseline(baselineFile);
      maybeDrain(0);
      loop = (async () => {
        while (!stopping) {
          await new Promise<void>((resolve) => {
            wake = resolve;
            setTimeout(resolve, interval);
          });
          if (!stopping) maybeDrain(await record());
        }
      })();
      return known;
    },
    get loop() {
      return loop;
    },
    /** Stops polling, records what is new, and lets a drain in flight finish. */
    async stop(waitForDrain: boolean): Promise<void> {
      stopping = true;
      wake();
      await loop;
      await record();
      if (waitForDrain) await draining;
    },
  };
}

export function registerWatchCommands(program: Command, serverOption: () => Option): void {
  const common = (c: Command) =>
    c
      .addOption(serverOption())
      .option('--slice <org/slice>', "push to this slice (default: the token's)")
      .option(
        '--queue <file>',
        `the local push queue (default: ${defaultQueueFile().replace(process.env.HOME ?? '\0', '~')})`,
      )
      .option('--interval <duration>', 'how often to look for new store paths', '1s')
      .option(
        '--baseline <file>',
        'keep the store baseline in this file: taken and saved if absent, reused if present (with --drain: first record what is new since it)',
      )
      .option('-j, --jobs <n>', 'parallel uploads', '4')
      .option('--timeout <duration>', 'longest time to drain the queue', '10m')
      .option('--json', 'print a JSON summary when done');

  common(program.command('watch-store'))
    .description(
      'push every new valid store path (built or fetched) as it appears, until stopped; --drain pushes what is queued and exits',
    )
    .option('--drain', 'do not watch: push what the queue holds (e.g. left by a killed watcher) and exit')
    .action(async (opts: WatchOpts & { drain?: boolean }) => {
      const { jobs, interval, timeout } = checkOpts(opts);
      const client = clientOptions(opts);
      if (!client.token)
        throw new CliError('pushing needs a token with the write scope: set FLOE_TOKEN or run `floe login`');
      const file = opts.queue ?? defaultQueueFile();
      const queue = PushQueue.open(file);
      const fresh = await keepFresh('watch-store', client);
      if (opts.drain) {
        if (opts.baseline) {
          // What appeared after a watcher that shared this baseline died (or after its last poll).
          const diff = new StoreDiff(storeDir());
          await diff.baseline(opts.baseline);
          const fresh = await diff.poll();
          if (fresh.length > 0)
            log('watch-store')(
              `recorded ${queue.record(fresh, opts.slice ?? '')} new store path(s) since the baseline`,
            );
        }
        log('watch-store')(`draining ${queue.size()} queued path(s) from ${file}`);
        const s = await drainWithin('watch-store', queue, client, jobs, timeout, fresh);
        if (!s) {
          log('watch-store')(
            `timed out after ${opts.timeout} with ${queue.size()} path(s) left in the queue: run \`floe watch-store --drain\` again`,
          );
          throw new CliExit(1);
        }
        fresh?.stop();
        report('watch-store', s, opts.json);
        if (s.failed.length > 0) throw new CliExit(1);
        return;
      }
      const watcher = watchLoop('watch-store', queue, client, opts.slice ?? '', jobs, interval, opts.baseline, fresh);
      const known = await watcher.start();
      log('watch-store')(
        `watching ${storeDir()} (${known} paths there already); queue ${file} (${queue.size()} waiting)`,
      );
      const stop = () => {
        watcher.stop(false).then(
          () => {
            log('watch-store')(
              `stopped; ${queue.size()} path(s) left in the queue (\`floe watch-store --drain\` pushes them)`,
            );
            process.exit(0);
          },
          (err: Error) => {
            log('watch-store')(`stopped: ${err.message}`);
            process.exit(1);
          },
        );
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      await watcher.loop;
    });

  common(program.command('watch-exec <command...>'))
    .description('run a command and push every store path it built or fetched (`floe watch-exec -- nix build .#x`)')
    .passThroughOptions()
    .action(async (command: string[], opts: WatchOpts) => {
      const { jobs, interval, timeout } = checkOpts(opts);
      const client = clientOptions(opts);
      if (!client.token)
        throw new CliError('pushing needs a token with the write scope: set FLOE_TOKEN or run `floe login`');
      const queue = PushQueue.open(opts.queue ?? defaultQueueFile());
      const fresh = await keepFresh('watch-exec', client);
      const watcher = watchLoop('watch-exec', queue, client, opts.slice ?? '', jobs, interval, opts.baseline, fresh);
      await watcher.start();
      const code = await new Promise<number>((resolve, reject) => {
        const child = spawn(command[0]!, command.slice(1), { stdio: 'inherit' });
        const forward = (signal: NodeJS.Signals) => child.kill(signal);
        process.on('SIGINT', forward);
        process.on('SIGTERM', forward);
        child.on('error', (err) => reject(new CliError(`cannot run ${command[0]}: ${err.message}`)));
        child.on('close', (c, signal) => {
          process.off('SIGINT', forward);
          process.off('SIGTERM', forward);
          resolve(c ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0));
        });
      }).catch(async (err: unknown) => {
        await watcher.stop(false);
        throw err;
      });
      // What the command left (even if it failed: partial builds are worth keeping) is recorded, then drained.
      await watcher.stop(true);
      const s = await drainWithin('watch-exec', queue, client, jobs, timeout, fresh);
      fresh?.stop();
      if (!s) {
        log('watch-exec')(
          `timed out after ${opts.timeout} with ${queue.size()} path(s) left in the queue: run \`floe watch-store --drain\``,
        );
        throw new CliExit(code !== 0 ? code : 1);
      }
      report('watch-exec', s, opts.json);
      const status = code !== 0 ? code : s.failed.length > 0 ? 1 : 0;
      if (status !== 0) throw new CliExit(status);
    });
}
