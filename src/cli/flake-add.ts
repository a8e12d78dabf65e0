/**
 * `floe add`: adds a Floe flake as an input of the flake.nix in a directory. A text edit, like
 * `fh add`: the input goes into an existing `inputs = { ... };` block, or as an `inputs.<name>.url`
 * line at the top of the flake's attribute set. Pure; the caller reads and writes the file.
 */
import { LINK_HONOURED_SINCE, type NixVersion, honoursImmutableLink } from '../nix/lockable-tarball.js';

export class FlakeEditError extends Error {}

export function addFlakeInput(flakeNix: string, name: string, url: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_'-]*$/.test(name))
    throw new FlakeEditError(`${JSON.stringify(name)} is not a valid input name`);
  if (
    new RegExp(`(^|[\\s{;.])${name}\\s*(\\.url)?\\s*=`, 'm').test(flakeNix) ||
    new RegExp(`inputs\\.${name}\\b`).test(flakeNix)
  ) {
    throw new FlakeEditError(`flake.nix already has an input named ${name}`);
  }
  const block = /(\binputs\s*=\s*\{)([ \t]*\n?)/.exec(flakeNix);
  if (block) {
    const at = block.index + block[1]!.length;
    const indent = /\n([ \t]*)\S/.exec(flakeNix.slice(at))?.[1] ?? '    ';
    return `${flakeNix.slice(0, at)}\n${indent}${name}.url = "${url}";${flakeNix.slice(at)}`;
  }
  const open = flakeNix.indexOf('{');
  if (open < 0) throw new FlakeEditError('flake.nix has no attribute set');
  return `${flakeNix.slice(0, open + 1)}\n  inputs.${name}.url = "${url}";${flakeNix.slice(open + 1)}`;
}

export interface InputChoice {
  url: string;
  /** What to tell the person, one line each (the reason for a pinned URL, how to update it). */
  notes: string[];
}

export interface InputChoiceArgs {
  /** `<org>/<flake>/<requirement>`, as `floe resolve` takes it. */
  ref: string;
  requirementUrl: string;
  pinnedUrl: string;
  version: string;
  /** `--pin` / `--no-pin`; undefined: decide from the local Nix. */
  pin: boolean | undefined;
  /** The local Nix, or undefined when `nix --version` could not be run. */
  nix: NixVersion | undefined;
}

/**
 * The URL `floe add` writes. A Nix that ignores `Link: rel="immutable"` locks a requirement URL
 * by name, and that lock breaks with "NAR hash mismatch" on the next fresh machine once a newer
 * release matches: for such a Nix the pinned release URL is the only lock that cannot drift.
 */
export function chooseInputUrl(a: InputChoiceArgs): InputChoice {
  const oldNix = a.nix !== undefined && !honoursImmutableLink(a.nix);
  const pin = a.pin ?? oldNix;
  const drift = `would lock ${a.requirementUrl} by name and fail with "NAR hash mismatch" on a fresh machine once a newer matching release is published`;
  if (pin) {
    const why =
      a.pin === undefined
        ? `your ${nixName(a.nix!)} ignores the Link header that lets ${LINK_HONOURED_SINCE} lock an exact release, so it ${drift}`
        : `--pin: exactly this release, whichever Nix locks it`;
    return {
      url: a.pinnedUrl,
      notes: [
        `pinned to release ${a.version} (${why})`,
        `to move to a newer release later: \`floe resolve ${a.ref}\` prints its URL; put that in flake.nix and run \`nix flake lock\`` +
          (a.pin === undefined ? ` (or, with ${LINK_HONOURED_SINCE}, use ${a.requirementUrl})` : ''),
      ],
    };
  }
  if (a.nix === undefined)
    return {
      url: a.requirementUrl,
      notes: [
        `could not run \`nix --version\`: if this flake is locked with a Nix older than 2.17 (Debian's 2.8, for one), use \`floe add --pin\`: such a Nix ${drift}`,
      ],
    };
  if (oldNix) return { url: a.requirementUrl, notes: [`--no-pin with ${nixName(a.nix)}: this Nix ${drift}`] };
  return { url: a.requirementUrl, notes: [] };
}

const nixName = (v: NixVersion) => `Nix ${v.major}.${v.minor}.${v.patch}`;
