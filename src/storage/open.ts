/** The only place that chooses storage backends (the composition root calls it). */
import path from 'node:path';
import { mkdir } from 'node:fs/promises';
import { FsBlobStore } from './blob/fs.js';
import { migrateToLatest } from './sql/migrations.js';
import { openSqlite } from './sql/sqlite.js';
import type { Storage } from './types.js';

export interface StorageConfig {
  kind: 'embedded';
  dataDir: string;
}

export async function openStorage(config: StorageConfig): Promise<Storage> {
  switch (config.kind) {
    case 'embedded': {
      await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
      const { db } = openSqlite(path.join(config.dataDir, 'floe.sqlite'));
      await migrateToLatest(db);
      const blobs = await FsBlobStore.open(config.dataDir);
      return { db, blobs, dialect: 'sqlite', close: () => db.destroy() };
    }
  }
}
