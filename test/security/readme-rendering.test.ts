/**
 * READMEs cost the server nothing per view and cannot make readers' browsers call other origins.
 * Found in a security review: a README rendered with markdown-it on every anonymous view
 * (`'![' × 100k + ']' × 100k` took 0.5–2 s each), and README images loaded from any https origin
 * (a private flake's README could report who reads it).
 */
import Database from 'better-sqlite3';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';
import { REV, flakeTarball, helloMeta, publish } from '../web/fixtures.js';
import { createHash } from 'node:crypto';
import type { ReadmeRenderer as Renderer } from '../../src/web/readme-renderer.js';

// The worker thread runs compiled JavaScript: use the build the server runs too (npm run build).
const rendererModule: string = '../../dist/src/web/readme-renderer.js';
const { ReadmeRenderer } = (await import(rendererModule)) as { ReadmeRenderer: typeof Renderer };

let server: TestServer;
let publisher: string;

beforeAll(async () => {
  server = await startFloe();
  await createOrg(server, 'acme');
  publisher = (await createToken(server, 'acme', ['publish'])).token;
});
afterAll(async () => {
  await server?.cleanup();
});

async function renders(): Promise<{ html: number; text: number }> {
  const text = await (
    await fetch(`${server.url}/metrics`, { headers: { Authorization: `Bearer ${server.adminToken}` } })
  ).text();
  const count = (result: string) =>
    Number(new RegExp(`^floe_readme_renders_total\\{result="${result}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
  return { html: count('html'), text: count('text') };
}

const flakePage = async (flake: string) => (await fetch(`${server.url}/flakes/acme/${flake}`)).text();

/** The release rows as stored (the test reads the real SQLite file, as an operator could). */
function withDb<T>(fn: (db: Database.Database) => T): T {
  const db = new Database(path.join(server.dataDir, 'floe.sqlite'));
  db.pragma('busy_timeout = 5000');
  try {
    return fn(db);
  } finally {
    db.close();
  }
}
const storedMetadata = (flake: string) =>
  withDb(
    (db) =>
      db
        .prepare(
          'SELECT releases.id, releases.metadata FROM releases JOIN flakes ON flakes.id = releases.flake_id WHERE flakes.name = ?',
        )
        .get(flake) as { id: string; metadata: string },
  );

describe('README rendering', () => {
  it('renders once at publish; views serve the stored HTML, however many and however slow the README', async () => {
    const before = await renders();
    // Quadratic for markdown-it, under the size limit.
    const pathological = `# slow\n\n${'!['.repeat(40_000)}${']'.repeat(40_000)}`;
    await publish(server, publisher, 'acme', 'slow', '1.0.0', helloMeta({ readme: pathological, revision: REV(1) }));
    const afterPublish = await renders();
    expect(afterPublish.html + afterPublish.text - before.html - before.text).toBe(1);
    const views = await Promise.all(Array.from({ length: 20 }, () => flakePage('slow')));
    for (const v of views) expect(v).toContain('<h1>slow</h1>');
    expect(await renders()).toEqual(afterPublish);
    const row = storedMetadata('slow');
    expect(JSON.parse(row.metadata).floe_readme.release).toBe(row.id);
  });

  it('a release published before READMEs were stored is rendered once, on first view, and the result kept', async () => {
    await publish(
      server,
      publisher,
      'acme',
      'old',
      '1.0.0',
      helloMeta({ readme: '# from before\n\nsome *text*', revision: REV(2) }),
    );
    // As a release stored by an older Floe: no rendered README.
    withDb((db) => {
      const row = db
        .prepare(
          "SELECT releases.id, releases.metadata FROM releases JOIN flakes ON flakes.id = releases.flake_id WHERE flakes.name = 'old'",
        )
        .get() as { id: string; metadata: string };
      const { floe_readme: _, ...meta } = JSON.parse(row.metadata) as Record<string, unknown>;
      db.prepare('UPDATE releases SET metadata = ? WHERE id = ?').run(JSON.stringify(meta), row.id);
    });
    const before = await renders();
    const views = await Promise.all(Array.from({ length: 10 }, () => flakePage('old')));
    for (const v of views) expect(v).toContain('<em>text</em>');
    const after = await renders();
    expect(after.html - before.html).toBe(1);
    await flakePage('old');
    expect(await renders()).toEqual(after);
    const row = storedMetadata('old');
    expect(JSON.parse(row.metadata).floe_readme.release).toBe(row.id);
  });

  it('HTML a client (or an old release) put in the metadata is never served', async () => {
    const forged = {
      release: 'whatever',
      html: '<form action="https://evil.example/"><button>log in again</button></form>',
    };
    await publish(
      server,
      publisher,
      'acme',
      'forged',
      '1.0.0',
      helloMeta({ readme: '# honest', revision: REV(3), floe_readme: forged }),
    );
    expect(await flakePage('forged')).not.toContain('evil.example');
    const row = storedMetadata('forged');
    expect(JSON.parse(row.metadata).floe_readme).toEqual({
      release: row.id,
      html: expect.stringContaining('<h1>honest</h1>'),
    });
    // A release stored before this change with a forged field: it names no release id the server minted.
    withDb((db) =>
      db
        .prepare('UPDATE releases SET metadata = ? WHERE id = ?')
        .run(JSON.stringify({ ...JSON.parse(row.metadata), floe_readme: forged }), row.id),
    );
    const page = await flakePage('forged');
    expect(page).not.toContain('evil.example');
    expect(page).toContain('<h1>honest</h1>');
  });

  it('READMEs over 256 KiB are refused at publish with a 413 saying so, and nothing is staged', async () => {
    const tarball = flakeTarball('big', 'big');
    const sha = createHash('sha256').update(tarball).digest('base64');
    for (const readme of ['x'.repeat(256 * 1024 + 1), 'é'.repeat(128 * 1024 + 1)]) {
      const res = await fetch(`${server.url}/upload/acme/big/1.0.0/${tarball.length}/${sha}`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${publisher}`, 'Content-Type': 'application/json' },
        body: JSON.stringify(helloMeta({ readme })),
      });
      expect(res.status).toBe(413);
      expect(await res.text()).toMatch(/README is \d+ bytes; at most 262144 \(256 KiB\)/);
    }
    expect(withDb((db) => db.prepare("SELECT count(*) AS n FROM release_uploads WHERE flake = 'big'").get())).toEqual({
      n: 0,
    });
    // Exactly the limit is fine.
    await publish(
      server,
      publisher,
      'acme',
      'big',
      '1.0.0',
      helloMeta({ readme: 'x'.repeat(256 * 1024), revision: REV(4) }),
    );
  });

  it('images from other origins become links; only relative and inline images load, and the CSP agrees', async () => {
    const readme = [
      '![beacon](https://evil.example/pixel.png?who=reader)',
      '![plain](http://evil.example/plain.png)',
      '![schemeless](//evil.example/schemeless.png)',
      '![backslash](/\\evil.example/backslash.png)',
      '![ref][r]',
      '[![badge](https://evil.example/badge.svg)](https://ci.example/)',
      '![shot](docs/screenshot.png)',
      '![inline](data:image/png;base64,iVBORw0KGgo=)',
      '',
      '[r]: https://evil.example/ref.png',
    ].join('\n\n');
    await publish(server, publisher, 'acme', 'pictures', '1.0.0', helloMeta({ readme, revision: REV(5) }));
    const res = await fetch(`${server.url}/flakes/acme/pictures`);
    const page = await res.text();
    const imgs = [...page.matchAll(/<img [^>]*src="([^"]*)"/g)].map((m) => m[1]);
    // Every image that loads is on this server or inline (markdown-it escapes `/\\host` into a local path).
    for (const src of imgs)
      expect(
        src!.startsWith('data:image/') ||
          new URL(src!, `${server.url}/flakes/acme/pictures`).origin === new URL(server.url).origin,
        src,
      ).toBe(true);
    expect(imgs).toEqual([
      '/%5Cevil.example/backslash.png',
      'docs/screenshot.png',
      'data:image/png;base64,iVBORw0KGgo=',
    ]);
    expect(page).toContain(
      '<a href="https://evil.example/pixel.png?who=reader" rel="nofollow noopener noreferrer" class="external-image">beacon</a>',
    );
    expect(page).toContain('class="external-image">schemeless</a>');
    expect(page).toContain('class="external-image">ref</a>');
    const csp = res.headers.get('content-security-policy')!;
    expect(csp).toMatch(/img-src 'self' data:;/);
    expect(csp).not.toMatch(/https:/);
  });

  it('a README too slow to render in time is shown as escaped text (the worker is stopped, not waited for)', async () => {
    const impatient = new ReadmeRenderer(undefined, undefined, 1);
    const patient = new ReadmeRenderer(undefined, undefined, 10_000);
    try {
      const slow = await impatient.render(`${'!['.repeat(50_000)}${']'.repeat(50_000)}<b>`);
      expect(slow.startsWith('<pre class="readme-source">![![')).toBe(true);
      expect(slow).toContain('&lt;b&gt;');
      expect(await patient.render('# fine\n\n<b>')).toBe('<h1>fine</h1>\n<p>&lt;b&gt;</p>\n');
    } finally {
      await impatient.close();
      await patient.close();
    }
  });
});
