/**
 * Release sort keys are compared by PostgreSQL with the database's collation, which for most
 * locales orders punctuation and letter case its own way. The keys are hex so that every
 * collation orders them as bytes: checked here under the collations this PostgreSQL has (the
 * suites' databases use C.UTF-8, which alone would not show it).
 */
import pg from 'pg';
import semver from 'semver';
import { describe, expect, it } from 'vitest';
import { postgresAvailable, startPostgres } from '../helpers/postgres.js';
import { parseVersion, versionSortKey } from '../../src/registry/version.js';

describe.skipIf(!postgresAvailable() && !process.env.CI)('release sort keys under PostgreSQL collations', () => {
  it('order as semver precedence whatever the collation', async () => {
    const server = await startPostgres();
    const client = new pg.Client({ connectionString: await server.createDatabase('collations') });
    await client.connect();
    try {
      const versions = [
        '1.0.0-0',
        '1.0.0-1',
        '1.0.0-10',
        '1.0.0-A',
        '1.0.0-B',
        '1.0.0-a-b',
        '1.0.0--',
        '1.0.0-Z-9',
        '1.0.0-alpha',
        '1.0.0-alpha.1',
        '1.0.0-alpha.beta',
        '1.0.0-alphabet',
        '1.0.0-beta.2',
        '1.0.0-beta.11',
        '1.0.0-rc.1',
        '1.0.0',
        '1.0.1',
        '1.10.0',
        '2.0.0',
        '10.0.0',
      ].sort(semver.compare);
      const keys = versions.map((v) => versionSortKey(parseVersion(v)));
      const collations = (
        await client.query<{ collname: string }>(
          "select collname from pg_collation where collname in ('default', 'C.utf8', 'en_US.utf8', 'de_DE.utf8', 'und-x-icu', 'en-US-x-icu')",
        )
      ).rows.map((r) => r.collname);
      expect(collations.length).toBeGreaterThan(1);
      for (const collation of collations) {
        const sorted = await client.query<{ k: string }>(
          `select k from unnest($1::text[]) k order by k collate "${collation}"`,
          [[...keys].reverse()],
        );
        expect(
          sorted.rows.map((r) => r.k),
          collation,
        ).toEqual(keys);
      }
    } finally {
      await client.end();
      await server.stop();
    }
  });
});
