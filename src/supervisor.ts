/**
 * Composition root of `floe serve --workers N`: the primary process migrates the database once,
 * then forks N workers (node:cluster) that share the listening socket, the database and the blob
 * store. Each worker is a whole `startServer`; the first one ("leader") also runs what must run
 * once per server (scheduled GC, the upload sweep, usage snapshots) and starts before the others,
 * so one-time set-up (keys, the admin token, upgrades) is done by the time they start. The primary
 * relays change notices between workers on the embedded backend (storage/cluster-changes.ts),
 * replaces a worker that dies (with backoff; a replaced leader's successor leads), and on SIGTERM
 * drains every worker (http/drain.ts in each) before it exits.
 *
 * The workers accept connections from the shared listening socket themselves (SCHED_NONE), not
 * through the primary (node:cluster's round robin, its default): the primary accepted each
 * connection and sent it to a worker over IPC, and one sent to a worker that had just died was
 * lost, its client waiting forever (a few connections in a hundred opened as a worker dies). With
 * the shared socket, a connection waits in the kernel's queue until a live worker takes it, and a
 * busy primary is never on the path of a request.
 */
import cluster, { type Worker } from 'node:cluster';
import { type Config, parseWorkers } from './config.js';
import type { Logger } from './log.js';
import { migrateStorage } from './server.js';
import { relayChangeNotices } from './storage/cluster-changes.js';

/** What a worker tells the primary once it serves. */
export interface WorkerReady {
  floeWorker: 'ready';
  url: string;
  storageDescription: string;
  adminTokenFile: string;
}

/** A worker that ran this long before dying was healthy: its replacement starts without delay. */
const HEALTHY_AFTER_MS = 30_000;
const MAX_BACKOFF_MS = 30_000;

/** `--workers`, else the configured count (FLOE_WORKERS or the config file's `workers`). */
export function workerCount(flag: string | undefined, configured: number): number {
  return flag === undefined ? configured : parseWorkers(flag, 'workers');
}

export function isReady(m: unknown): m is WorkerReady {
  return typeof m === 'object' && m !== null && (m as { floeWorker?: unknown }).floeWorker === 'ready';
}

/** The role a worker was forked with (read inside the worker). */
export function workerRole(env: NodeJS.ProcessEnv = process.env): { singletons: boolean; workerHeader: boolean } {
  return { singletons: env.FLOE_WORKER_ROLE !== 'follower', workerHeader: env.FLOE_TEST_WORKER_HEADER === '1' };
}

/** Runs the primary; resolves with the first worker's ready message once all N serve. */
export async function superviseWorkers(
  config: Config,
  n: number,
  log: Logger,
  onStopped: (code: number) => void,
): Promise<WorkerReady> {
  await migrateStorage(config);
  // Before the first fork: the policy is fixed once cluster sets up.
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  const live = new Set<Worker>();
  const relay = relayChangeNotices(() => [...live]);
  let leader: Worker | undefined;
  let stopping = false;
  let crashes = 0;
  let serving = false;

  const fork = (lead: boolean): Promise<WorkerReady> => {
    const w = cluster.fork({ FLOE_WORKER_ROLE: lead ? 'leader' : 'follower' });
    const started = Date.now();
    live.add(w);
    if (lead) leader = w;
    w.on('message', (m: unknown) => relay.onMessage(w, m));
    return new Promise((resolve, reject) => {
      let ready = false;
      w.on('message', (m: unknown) => {
        if (!isReady(m)) return;
        ready = true;
        resolve(m);
      });
      w.on('exit', (code, signal) => {
        live.delete(w);
        relay.onExit(w);
        const wasLeader = leader === w;
        if (wasLeader) leader = undefined;
        if (!ready)
          reject(new Error(`worker ${w.process.pid} stopped while starting (${signal ?? `exit code ${code}`})`));
        if (stopping) {
          if (live.size === 0) onStopped(0);
          return;
        }
        // A worker that cannot start at all would only fail again: the start-up fails instead.
        if (!ready && !serving) return;
        crashes = Date.now() - started > HEALTHY_AFTER_MS ? 0 : crashes + 1;
        const delay = crashes === 0 ? 0 : Math.min(MAX_BACKOFF_MS, 250 * 2 ** (crashes - 1));
        log.error({ pid: w.process.pid, code, signal, restartInMs: delay }, 'worker stopped: starting a replacement');
        setTimeout(() => {
          if (stopping) return;
          fork(wasLeader).then(
            (r) => log.info({ url: r.url }, 'replacement worker serving'),
            (err: Error) => log.error({ err }, 'replacement worker failed to start'),
          );
        }, delay);
      });
    });
  };

  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      // A second signal: stop at once.
      for (const w of live) w.process.kill('SIGKILL');
      onStopped(1);
      return;
    }
    stopping = true;
    process.stderr.write(
      `floe: ${signal}: draining ${live.size} workers (up to ${config.shutdownGraceSeconds} s; ${signal} again to stop at once)\n`,
    );
    // A terminal's Ctrl-C reaches every worker itself; a SIGTERM is for the primary alone.
    if (signal === 'SIGTERM') for (const w of live) w.process.kill('SIGTERM');
    if (live.size === 0) onStopped(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);

  try {
    const first = await fork(true);
    await Promise.all(Array.from({ length: n - 1 }, () => fork(false)));
    serving = true;
    return first;
  } catch (err) {
    stopping = true;
    for (const w of live) w.process.kill('SIGTERM');
    throw err;
  }
}
