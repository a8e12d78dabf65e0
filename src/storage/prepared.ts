/**
 * Hot queries are built and compiled once (by Kysely, for whatever dialect `db` speaks) and then
 * executed with fresh parameters: no query building or SQL compilation per request.
 */
import type { Compilable } from 'kysely';
import type { Db } from './types.js';

export function prepareQuery<O>(db: Db, query: Compilable<O>): (...params: unknown[]) => Promise<O[]> {
  const compiled = query.compile();
  return async (...params) => {
    if (params.length !== compiled.parameters.length) {
      throw new Error(`prepared query expects ${compiled.parameters.length} parameters, got ${params.length}`);
    }
    return (await db.executeQuery<O>({ ...compiled, parameters: params })).rows;
  };
}
