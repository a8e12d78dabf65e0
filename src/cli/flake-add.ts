/**
 * `floe add`: adds a Floe flake as an input of the flake.nix in a directory. A text edit, like
 * `fh add`: the input goes into an existing `inputs = { ... };` block, or as an `inputs.<name>.url`
 * line at the top of the flake's attribute set. Pure; the caller reads and writes the file.
 */
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
