/**
 * Registry figures at 10k flakes: requirement resolution, the `/f/...` tarball redirect Nix
 * follows, and search. The catalogue is seeded straight into the database (publishing 10k
 * tarballs through the API would measure tarball verification, not lookups); requests go over
 * HTTP to a real `floe serve`, driven by wrk.
 */
import { wrkScript } from './wrk.js';
import { randomUUID } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { openStorage } from '../src/storage/open.js';
import { parseVersion, versionSortKey } from '../src/registry/version.js';
import { serveForBench } from './serve.js';

const WORDS = [
  'nix',
  'rust',
  'python',
  'go',
  'web',
  'cli',
  'tools',
  'db',
  'ml',
  'infra',
  'deploy',
  'home',
  'darwin',
  'server',
  'cache',
  'lint',
];

export async function registryBench(work: string, duration: string): Promise<string[][]> {
  const dataDir = path.join(work, 'registry-data');
  const storage = await openStorage({ dataDir });
  const now = new Date().toISOString();
  const orgs = Array.from({ length: 100 }, (_, i) => ({ id: randomUUID(), name: `org${i}`, created_at: now }));
  await storage.db.insertInto('orgs').values(orgs).execute();
  for (let i = 0; i < 10_000; i += 500) {
    const flakes = Array.from({ length: 500 }, (_, j) => {
      const n = i + j;
      return {
        id: randomUUID(),
        org_id: orgs[n % 100]!.id,
        name: `flake${n}-${WORDS[n % WORDS.length]}`,
        source_binding: null,
        visibility: 'public' as const,
        description: `A ${WORDS[(n * 7) % WORDS.length]} flake for ${WORDS[(n * 3) % WORDS.length]} number ${n}`,
        labels: JSON.stringify([WORDS[n % WORDS.length], WORDS[(n + 5) % WORDS.length]]),
        created_at: now,
        updated_at: now,
      };
    });
    await storage.db.insertInto('flakes').values(flakes).execute();
    const releases = flakes.flatMap((f) =>
      Array.from({ length: 5 }, (_, k) => ({
        id: randomUUID(),
        flake_id: f.id,
        version: `0.1.${k * 10}+rev-${'a'.repeat(40)}`,
        version_key: `0.1.${k * 10}`,
        version_sort: versionSortKey(parseVersion(`0.1.${k * 10}`)),
        revision: 'a'.repeat(40),
        commit_count: k * 10,
        nar_hash: 'sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=',
        last_modified: 1_700_000_000,
        tarball_key: 'tarball-none.tar.gz',
        tarball_size: 1,
        metadata: '{"visibility":"public"}',
        published_by: 'bench',
        yanked_at: null,
        created_at: now,
      })),
    );
    // SQLite allows 32,766 bound variables per statement.
    for (let k = 0; k < releases.length; k += 500)
      await storage.db
        .insertInto('releases')
        .values(releases.slice(k, k + 500))
        .execute();
  }
  // One flake with 5,000 releases (rolling 0.1.<n>, every 10th yanked, prereleases of 1.0.0 above
  // them): resolution must not grow with the number of releases.
  const big = {
    id: randomUUID(),
    org_id: orgs[0]!.id,
    name: 'busy',
    source_binding: null,
    visibility: 'public' as const,
    description: 'many releases',
    labels: '[]',
    created_at: now,
    updated_at: now,
  };
  await storage.db.insertInto('flakes').values(big).execute();
  const bigReleases = Array.from({ length: 5000 }, (_, n) => {
    const version = n < 4900 ? `0.1.${n}+rev-${'b'.repeat(40)}` : `1.0.0-rc.${n - 4900}`;
    const parsed = parseVersion(version);
    return {
      id: randomUUID(),
      flake_id: big.id,
      version,
      version_key: version.split('+')[0]!,
      version_sort: versionSortKey(parsed),
      revision: 'b'.repeat(40),
      commit_count: n,
      nar_hash: 'sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=',
      last_modified: 1_700_000_000,
      tarball_key: 'tarball-none.tar.gz',
      tarball_size: 1,
      metadata: '{"visibility":"public"}',
      published_by: 'bench',
      yanked_at: n % 10 === 9 ? now : null,
      created_at: now,
    };
  });
  for (let k = 0; k < bigReleases.length; k += 500)
    await storage.db
      .insertInto('releases')
      .values(bigReleases.slice(k, k + 500))
      .execute();
  await storage.close();

  const server = await serveForBench(dataDir);
  const url = server.url;
  try {
    const script = path.join(work, 'registry.lua');
    writeFileSync(
      script,
      wrkScript(`done = function(summary, latency)
  io.write(string.format("RESULT %f %f %f %d\\n", summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.errors.status))
end`),
    );
    const run = (label: string, paths: string[]) => {
      const file = path.join(work, `registry-${label.replace(/\W+/g, '-')}.txt`);
      writeFileSync(file, paths.join('\n') + '\n');
      const out = execFileSync('wrk', ['-t1', '-c8', `-d${duration}`, '--latency', '-s', script, url], {
        env: { ...process.env, WRK_PATHS: file },
        encoding: 'utf8',
      });
      const line = out.split('\n').find((l) => l.startsWith('RESULT '))!;
      const [rps, p50, p99, errors] = line.slice(7).split(' ').map(Number);
      if (errors! > 0) throw new Error(`${label}: ${errors} error statuses`);
      return [label, rps!.toFixed(0), p50!.toFixed(3), p99!.toFixed(3)];
    };
    const some = (f: (n: number) => string) => Array.from({ length: 1000 }, (_, k) => f((k * 7919) % 10_000));
    const rows = [
      run(
        'resolve 0.1 (API)',
        some((n) => `/api/v1/flakes/org${n % 100}/flake${n}-${WORDS[n % WORDS.length]}/resolve/0.1`),
      ),
      run(
        'tarball redirect /f/org/flake/0.1.tar.gz',
        some((n) => `/f/org${n % 100}/flake${n}-${WORDS[n % WORDS.length]}/0.1.tar.gz`),
      ),
      run('resolve 0.1 (API), one flake with 5,000 releases', ['/api/v1/flakes/org0/busy/resolve/0.1']),
      run('resolve * (API), one flake with 5,000 releases', ['/api/v1/flakes/org0/busy/resolve/*']),
      run(
        'search, one word',
        WORDS.map((w) => `/api/v1/search?q=${w}`),
      ),
      run(
        'search, two words',
        WORDS.map((w, k) => `/api/v1/search?q=${w}+${WORDS[(k + 3) % WORDS.length]}`),
      ),
    ];
    return rows;
  } finally {
    server.stop();
  }
}
