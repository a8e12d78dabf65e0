import { DEFAULT_STORE_DIR } from './store-path.js';

/** `nix-cache-info`: numeric Priority only (a non-number aborts Nix 2.8 with `error: stoi`). */
export function formatCacheInfo(opts: { storeDir?: string; wantMassQuery: boolean; priority: number }): string {
  if (!Number.isInteger(opts.priority) || opts.priority < 0) throw new Error('priority must be a non-negative integer');
  return `StoreDir: ${opts.storeDir ?? DEFAULT_STORE_DIR}\nWantMassQuery: ${opts.wantMassQuery ? 1 : 0}\nPriority: ${opts.priority}\n`;
}
