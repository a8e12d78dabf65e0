/** Flake tarballs made in the test (tar-stream, so anything a hostile publisher could send) and the flakehub-push protocol. */
import { createHash } from 'node:crypto';
import zlib from 'node:zlib';
import tar from 'tar-stream';

export interface TarEntry {
  name: string;
  type?: tar.Header['type'];
  content?: string | Buffer;
  linkname?: string;
}

/** A gzip tarball with exactly these entries, in this order. */
export async function craftedTarball(entries: TarEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  for (const e of entries) {
    if (e.content !== undefined)
      pack.entry({ name: e.name, type: e.type ?? 'file', mtime: new Date(1_700_000_000_000) }, e.content);
    else
      pack.entry({
        name: e.name,
        type: e.type ?? 'directory',
        mtime: new Date(1_700_000_000_000),
        ...(e.linkname ? { linkname: e.linkname } : {}),
      });
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return zlib.gzipSync(Buffer.concat(chunks), { level: 9 });
}

export interface PushResult {
  stage: number;
  put?: number;
  publish?: number;
  message: string;
}

/** The `message` of a JSON error body, or the text itself. */
async function messageOf(res: Response): Promise<string> {
  const text = await res.text();
  try {
    return String((JSON.parse(text) as { message?: unknown }).message ?? text);
  } catch {
    return text;
  }
}

/** The three calls flakehub-push makes (stage, PUT to the returned URL, publish); stops at the first failure. */
export async function flakehubPush(
  server: { url: string },
  token: string,
  org: string,
  flake: string,
  version: string,
  tarball: Buffer,
  meta: Record<string, unknown> = { visibility: 'public' },
): Promise<PushResult> {
  const sha = createHash('sha256').update(tarball).digest('base64');
  const auth = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', 'User-Agent': 'flakehub-push' };
  const stage = await fetch(`${server.url}/upload/${org}/${flake}/${version}/${tarball.length}/${sha}`, {
    method: 'POST',
    headers: auth,
    body: JSON.stringify(meta),
  });
  if (stage.status !== 200) return { stage: stage.status, message: await messageOf(stage) };
  const { s3_upload_url, uuid } = (await stage.json()) as { s3_upload_url: string; uuid: string };
  const put = await fetch(s3_upload_url, {
    method: 'PUT',
    headers: { 'Content-Type': 'application/gzip', 'x-amz-checksum-sha256': sha },
    body: new Uint8Array(tarball),
  });
  if (put.status !== 200) return { stage: 200, put: put.status, message: await messageOf(put) };
  const publish = await fetch(`${server.url}/publish/${uuid}`, { method: 'POST', headers: auth });
  return { stage: 200, put: 200, publish: publish.status, message: await messageOf(publish) };
}
