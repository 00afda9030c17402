#!/usr/bin/env bash
# Benchmarks: sgprobe against nmap and masscan, in the same lab, in the same run.
# Needs root (the lab). Installs the lab's tools, the peers and GNU time (peak RSS) on Debian.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for tool in nmap masscan; do command -v "$tool" >/dev/null 2>&1 || need+=("$tool"); done
command -v nft >/dev/null 2>&1 || need+=(nftables)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
[ -x /usr/bin/time ] || need+=(time)
if [ "${#need[@]}" -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
cargo build --release --locked
exec cargo bench --locked --bench lab -- "$@"
