/** The outputs inventory a release records (from `nix flake show --json`), read purely. */
export interface InventoryNode {
  children?: Record<string, InventoryNode>;
  outputs?: Record<string, string> | null;
}

/** The `out` store path of `attr` (e.g. `nixosConfigurations.web`) in a release's metadata JSON. */
export function outputStorePath(metadataJson: string, attr: string): string | undefined {
  let meta: { outputs?: { inventory?: Record<string, InventoryNode> } };
  try {
    meta = JSON.parse(metadataJson) as typeof meta;
  } catch {
    return undefined;
  }
  let node: InventoryNode | undefined = { children: meta.outputs?.inventory ?? {} };
  for (const part of attr.split('.')) node = node?.children?.[part];
  const out = node?.outputs?.out;
  return typeof out === 'string' ? out : undefined;
}
