/** The local Nix's version, for the choices that depend on it (`floe add`). */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { type NixVersion, parseNixVersion } from '../nix/lockable-tarball.js';

/** `nix --version` of the `nix` on PATH, or undefined when there is none (or it says nothing we can read). */
export async function localNixVersion(): Promise<NixVersion | undefined> {
  try {
    const { stdout } = await promisify(execFile)('nix', ['--version'], { timeout: 60_000 });
    return parseNixVersion(stdout);
  } catch {
    return undefined;
  }
}
