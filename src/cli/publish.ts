/**
 * `floe publish`: from a CI checkout, make the source tarball of the tracked files, collect the
 * release metadata, build and push the outputs named with --include-output (so the release can be
 * resolved to store paths and applied), then publish through the flakehub-push protocol.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstat, readFile, readlink, readdir } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import tar from 'tar-stream';
import { CliError, apiRequest, type ClientOptions } from './client.js';
import { push } from './push.js';
import type { Visibility } from '../wire/access.js';

const exec = promisify(execFile);

export interface PublishOptions {
  dir: string;
  org?: string;
  name?: string;
  rolling: boolean;
  rollingMinor: number;
  tag?: string;
  visibility: Visibility;
  includeOutputs: string[];
  labels: string[];
  dryRun: boolean;
  log: (line: string) => void;
}

async function git(cwd: string, args: string[]): Promise<string> {
  try {
    return (await exec('git', args, { cwd, maxBuffer: 64 << 20 })).stdout;
  } catch (err) {
    throw new CliError(
      `git ${args[0]} failed in ${cwd}: ${((err as { stderr?: string }).stderr ?? (err as Error).message).trim()} (publish from a git checkout)`,
    );
  }
}

/** A deterministic tarball of the tracked files under `dir`, inside one top-level `source/` directory. */
async function sourceTarball(root: string, dir: string, mtime: number): Promise<Buffer> {
  const rel = path.relative(root, dir);
  const files = (await git(root, ['ls-files', '-z', '--', rel || '.'])).split('\0').filter(Boolean).sort();
  if (!files.some((f) => f === path.join(rel, 'flake.nix') || (rel === '' && f === 'flake.nix')))
    throw new CliError(`no tracked flake.nix in ${dir}`);
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack.pipe(zlib.createGzip())) chunks.push(c as Buffer);
  })();
  const dirs = new Set<string>();
  for (const file of files) {
    const inside = rel ? path.relative(rel, file) : file;
    const parts = inside.split('/');
    for (let i = 1; i < parts.length; i++) {
      const d = parts.slice(0, i).join('/');
      if (!dirs.has(d)) {
        dirs.add(d);
        pack.entry({ name: `source/${d}/`, type: 'directory', mode: 0o755, mtime: new Date(mtime * 1000) });
      }
    }
    const full = path.join(root, file);
    const st = await lstat(full).catch(() => undefined);
    if (!st) continue; // tracked but deleted in the working tree
    const header = { name: `source/${inside}`, mtime: new Date(mtime * 1000), uid: 0, gid: 0 };
    if (st.isSymbolicLink()) pack.entry({ ...header, type: 'symlink', linkname: await readlink(full) });
    else if (st.isFile())
      pack.entry({ ...header, type: 'file', mode: st.mode & 0o100 ? 0o755 : 0o644 }, await readFile(full));
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

async function nixJson(args: string[], cwd: string): Promise<unknown> {
  try {
    const { stdout } = await exec('nix', ['--extra-experimental-features', 'nix-command flakes', ...args], {
      cwd,
      maxBuffer: 256 << 20,
    });
    return JSON.parse(stdout);
  } catch (err) {
    throw new CliError(
      `nix ${args.slice(0, 2).join(' ')} failed: ${((err as { stderr?: string }).stderr ?? '').trim().split('\n').at(-1)}`,
    );
  }
}

/** `nix flake show --json` (nested attrsets, leaves with a `type`) to flake-schemas-style nodes. */
export function showToInventory(tree: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(tree)) {
    if (!value || typeof value !== 'object') continue;
    const v = value as Record<string, unknown>;
    if (typeof v.type === 'string') {
      out[name] = {
        what: v.type === 'derivation' ? 'package' : v.type,
        ...(typeof v.description === 'string' ? { shortDescription: v.description } : {}),
      };
    } else {
      out[name] = { children: showToInventory(v) };
    }
  }
  return out;
}

export async function publishFlake(
  client: ClientOptions,
  opts: PublishOptions,
): Promise<{ org: string; flake: string; version: string; url: string }> {
  const dir = path.resolve(opts.dir);
  const root = (await git(dir, ['rev-parse', '--show-toplevel'])).trim();
  const rev = (await git(root, ['rev-parse', 'HEAD'])).trim();
  const commitCount = Number((await git(root, ['rev-list', '--count', 'HEAD'])).trim());
  const commitTime = Number((await git(root, ['log', '-1', '--format=%ct'])).trim());

  let version: string;
  if (opts.rolling) version = `0.${opts.rollingMinor}.${commitCount}+rev-${rev}`;
  else {
    const tag =
      opts.tag ?? (process.env.GITHUB_REF_TYPE === 'tag' ? process.env.GITHUB_REF_NAME : process.env.CI_COMMIT_TAG);
    if (!tag) throw new CliError('no version: pass --tag vX.Y.Z, run on a tag, or use --rolling');
    version = tag.replace(/^v/, '');
  }
  const [repoOwner, repoName] = (process.env.GITHUB_REPOSITORY ?? '').split('/');
  const org = opts.org ?? repoOwner;
  const flake = opts.name ?? repoName ?? path.basename(root);
  if (!org) throw new CliError('no org: pass --org (GITHUB_REPOSITORY is not set)');

  const tarball = await sourceTarball(root, dir, commitTime);
  const readmeName = (await readdir(dir)).find((f) => f.toLowerCase() === 'readme.md');
  const readme = readmeName ? await readFile(path.join(dir, readmeName), 'utf8') : null;
  const metadata = (await nixJson(['flake', 'metadata', '--json', `path:${dir}`], dir).catch(() => ({}))) as {
    description?: string;
  };

  // The outputs inventory: what `nix flake show` lists (for people and search), then the outputs to
  // resolve and apply later, built, pushed, and recorded with their store paths.
  const shown = await nixJson(['flake', 'show', '--json', `path:${dir}`], dir).catch(() => undefined);
  const inventory: Record<string, unknown> =
    shown && typeof shown === 'object' ? showToInventory(shown as Record<string, unknown>) : {};
  const outPaths: string[] = [];
  for (const attr of opts.includeOutputs) {
    const built = (await nixJson(['build', '--no-link', '--json', `path:${dir}#${attr}`], dir)) as Array<{
      outputs: Record<string, string>;
    }>;
    const outputs = built[0]?.outputs;
    if (!outputs?.out) throw new CliError(`${attr} did not build to an "out" output`);
    outPaths.push(...Object.values(outputs));
    let node = inventory;
    const parts = attr.split('.');
    for (const part of parts.slice(0, -1)) {
      const next = ((node[part] as { children?: Record<string, unknown> } | undefined) ?? { children: {} }) as {
        children: Record<string, unknown>;
      };
      node[part] = next;
      node = next.children;
    }
    node[parts.at(-1)!] = { ...((node[parts.at(-1)!] as object | undefined) ?? {}), outputs };
  }

  opts.log(`${org}/${flake} ${version}: ${tarball.length} bytes of source, ${outPaths.length} output path(s)`);
  if (opts.dryRun) return { org, flake, version, url: `${client.server}/f/${org}/${flake}/=${version}` };

  if (outPaths.length > 0) {
    const pushed = await push(client, outPaths, { jobs: 4, progress: (line, final) => final && opts.log(line) });
    if (pushed.failed.length > 0) throw new CliError(`could not push the outputs: ${pushed.failed[0]!.error}`);
  }
  const sha = createHash('sha256').update(tarball).digest('base64');
  const staged = await apiRequest<{ s3_upload_url: string; uuid: string }>(
    client,
    'POST',
    `/upload/${encodeURIComponent(org)}/${encodeURIComponent(flake)}/${encodeURIComponent(version)}/${tarball.length}/${sha}`,
    {
      commit_count: commitCount,
      description: metadata.description ?? null,
      readme,
      repo: `${org}/${flake}`,
      revision: rev,
      visibility: opts.visibility,
      source_subdirectory: path.relative(root, dir),
      labels: opts.labels,
      outputs: { version: 1, docs: {}, inventory },
    },
  );
  const put = await fetch(staged.s3_upload_url, {
    method: 'PUT',
    headers: { 'Content-Type': 'application/gzip' },
    body: new Uint8Array(tarball),
  });
  if (!put.ok) throw new CliError(`uploading the tarball failed: ${put.status} ${(await put.text()).trim()}`);
  await apiRequest(client, 'POST', `/publish/${staged.uuid}`);
  return { org, flake, version, url: `${client.server}/f/${org}/${flake}/=${version}` };
}
