/**
 * `GET|HEAD|PUT /cache[/<org>/<slice>]/debuginfo/<build id>[.debug]` (Nix's `index-debug-info=true`,
 * sent before the NAR it points into): checked and kept by cache/debuginfo.ts, which resolves the
 * client's archive name to the NAR Floe serves when the narinfo commits; until then, and for
 * callers who may not read that NAR, GET answers the one miss (dwarffs and nixseparatedebuginfod
 * take it for "no debug info here").
 */
import { InvalidInput } from '../../errors.js';
import { readJson } from '../body.js';
import type { CacheRequest, CacheRouteIo } from './logs.js';

// Nix 2.8 names the file `<build id>.debug` (the `.debug` of the member's name kept), newer Nix without it.
const BUILD_ID = /^[0-9a-f]{40}(\.debug)?$/;
const ARCHIVE = /^\.\.\/nar\/[0-9a-zA-Z][0-9a-zA-Z._+-]{0,200}$/;
const MEMBER = /^lib\/debug\/\.build-id\/[0-9a-f]{2}\/[0-9a-f]{38}\.debug$/;
/** `{"archive":"../nar/<file>","member":"lib/debug/.build-id/xx/….debug"}` is ~200 bytes. */
const MAX_DEBUGINFO_BYTES = 4096;

/** PURE: the document Nix writes, field by field. */
export function checkDebugInfo(buildId: string, value: unknown): { archive: string; member: string } {
  if (!BUILD_ID.test(buildId)) throw new InvalidInput('debuginfo', 'expected debuginfo/<40 hex digits of a build id>');
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new InvalidInput('debuginfo', 'expected a JSON object');
  const { archive, member } = value as Record<string, unknown>;
  if (typeof archive !== 'string' || !ARCHIVE.test(archive))
    throw new InvalidInput('debuginfo archive', 'expected "../nar/<file name>"');
  if (typeof member !== 'string' || !MEMBER.test(member))
    throw new InvalidInput('debuginfo member', 'expected "lib/debug/.build-id/<2 hex>/<38 hex>.debug"');
  if (
    member
      .slice('lib/debug/.build-id/'.length)
      .replace('/', '')
      .replace(/\.debug$/, '') !== buildId.slice(0, 40)
  ) {
    throw new InvalidInput('debuginfo member', `${JSON.stringify(member)} is not the file of build id ${buildId}`);
  }
  return { archive, member };
}

export async function handleDebugInfo(r: CacheRequest, io: CacheRouteIo, rest: readonly string[]): Promise<boolean> {
  if (rest.length !== 2 || rest[0] !== 'debuginfo') return false;
  const method = r.req.method ?? 'GET';
  if (method === 'GET' || method === 'HEAD') {
    // Served as `<build id>` and, as Nix 2.8 names the upload, `<build id>.debug`.
    if (!BUILD_ID.test(rest[1]!)) return io.miss();
    const doc = await r.cache.debugInfo.find(r.principal, r.view, rest[1]!.slice(0, 40));
    if (doc === undefined) return io.miss();
    io.send(200, { 'Content-Type': 'application/json', 'Cache-Control': 'private, no-cache' }, doc);
    return true;
  }
  if (method !== 'PUT') return false;
  const target = await r.cache.uploads.writeTarget(r.principal, r.view); // refuse before reading the body
  if (!BUILD_ID.test(rest[1]!)) throw new InvalidInput('debuginfo', 'expected debuginfo/<40 hex digits of a build id>');
  io.acceptBody();
  const { archive, member } = checkDebugInfo(rest[1]!, await readJson(r.req, MAX_DEBUGINFO_BYTES));
  const entry = { buildId: rest[1]!.slice(0, 40), archiveFile: archive.slice('../nar/'.length), member };
  await r.cache.debugInfo.put(r.principal, target, entry);
  io.send(204, {});
  return true;
}
