/**
 * PURE: how a login reaches Nix. Single-user Nix reads the user's nix.conf and netrc; a
 * nix-daemon (multi-user Nix) reads only /etc/nix (NIX_CONF_DIR) and ignores untrusted users'
 * substituters, keys and netrc. An existing `netrc-file` setting is joined, never replaced: Nix
 * keeps one netrc-file, so a second setting would silently drop the company's netrc.
 */

export const DAEMON_SOCKET = '/nix/var/nix/daemon-socket/socket';

export interface NixMode {
  multiUser: boolean;
  /** Why we think so, for messages. */
  reason: string;
}

/** Decides from NIX_REMOTE and whether the daemon socket exists (the caller stats it). */
export function nixMode(env: { NIX_REMOTE?: string | undefined }, socketPath: string, socketExists: boolean): NixMode {
  const remote = env.NIX_REMOTE?.trim();
  if (remote === 'daemon' || remote?.startsWith('unix://')) return { multiUser: true, reason: `NIX_REMOTE=${remote}` };
  if (remote === 'local' || remote?.startsWith('/')) return { multiUser: false, reason: `NIX_REMOTE=${remote}` };
  if (socketExists) return { multiUser: true, reason: `the nix-daemon socket ${socketPath} exists` };
  return { multiUser: false, reason: `no nix-daemon socket at ${socketPath}` };
}

const blockBegin = (host: string) => `# >>> floe ${host} (managed by floe login) >>>`;
const blockEnd = (host: string) => `# <<< floe ${host} <<<`;

/** `text` without Floe's managed block for `host` (and the newline after it). */
export function removeNixConfBlock(text: string, host: string): string {
  const start = text.indexOf(blockBegin(host));
  const stop = text.indexOf(blockEnd(host));
  if (start < 0 || stop < start) return text;
  let after = stop + blockEnd(host).length;
  if (text[after] === '\n') after++;
  return text.slice(0, start) + text.slice(after);
}

/** The netrc file an existing `netrc-file` setting names (outside Floe's own block), if any. */
export function existingNetrcFile(nixConf: string, host: string): string | undefined {
  let found: string | undefined;
  for (const line of removeNixConfBlock(nixConf, host).split('\n')) {
    const m = /^\s*(?:extra-)?netrc-file\s*=\s*(\S+)\s*(?:#.*)?$/.exec(line);
    if (m) found = m[1];
  }
  return found;
}

export interface CacheLines {
  substituter: string;
  publicKey: string;
}

/** nix.conf lines for the cache; `netrcFile` is left out when an existing setting already names the file. */
export function cacheConfLines(c: CacheLines, netrcFile: string | undefined): string[] {
  return [
    `extra-substituters = ${c.substituter}`,
    `extra-trusted-public-keys = ${c.publicKey}`,
    ...(netrcFile ? [`netrc-file = ${netrcFile}`] : []),
  ];
}

/**
 * What the admin of a multi-user machine must add so the daemon substitutes from Floe, printed by
 * a login without root. `netrcFile` is the file the system's netrc-file setting names, if any.
 */
export function adminInstructions(o: {
  c: CacheLines;
  host: string;
  confDir: string;
  netrcFile: string | undefined;
  user: string;
  loginCommand: string;
}): string {
  const netrc = o.netrcFile ?? `${o.confDir}/netrc`;
  return [
    'this machine runs the nix-daemon (multi-user Nix): it ignores the substituters, keys and netrc of users it does not trust,',
    'so what was written for you applies only to floe itself (and to Nix if you are in trusted-users).',
    'For Nix to use the cache, an admin runs the same login as root with --system:',
    `  sudo ${o.loginCommand} --system`,
    `or adds to ${o.confDir}/nix.conf:`,
    `  extra-substituters = ${o.c.substituter}`,
    `  extra-trusted-public-keys = ${o.c.publicKey}`,
    ...(o.netrcFile ? [] : [`  netrc-file = ${netrc}`]),
    `and to ${netrc} (mode 0600, root only) a token with the read scope:`,
    `  machine ${o.host} login floe password <token>`,
    'Instead of extra-substituters, users may choose the cache themselves once the admin adds:',
    `  trusted-substituters = ${o.c.substituter}`,
    `(or trusted-users = ${o.user}, which trusts every setting of ${o.user}: root-equivalent).`,
    'Then restart the nix-daemon (systemctl restart nix-daemon; macOS: sudo launchctl kickstart -k system/org.nixos.nix-daemon).',
  ].join('\n');
}
