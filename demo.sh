#!/usr/bin/env bash
# The demo on a fresh Debian machine: installs what the lab needs (as root), builds, runs
# `sgprobe demo` (root: network namespaces). Ctrl-C removes everything it built.
set -euo pipefail
cd "$(dirname "$0")"

need=()
command -v nft >/dev/null 2>&1 || need+=(nftables)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v sysctl >/dev/null 2>&1 || need+=(procps)
if [ "${#need[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing ${need[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    else
        echo "the demo's lab needs: ${need[*]} (as root: apt-get install ${need[*]})" >&2
        exit 1
    fi
fi

cargo build --release --locked
if [ "$(id -u)" = 0 ]; then
    exec target/release/sgprobe demo "$@"
fi
exec sudo target/release/sgprobe demo "$@"
