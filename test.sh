#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit, property, CLI and (as root) lab tests.
# As root on Debian it first installs the system packages the lab tests need.
set -euo pipefail
cd "$(dirname "$0")"

need=()
command -v nft >/dev/null 2>&1 || need+=(nftables)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v sysctl >/dev/null 2>&1 || need+=(procps)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
command -v buildah >/dev/null 2>&1 || need+=(buildah)
if [ "${#need[@]}" -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The Kubernetes manifests are checked against the API's schemas, which
# kubernetes-validate (PyPI) carries: offline.
if ! command -v kubernetes-validate >/dev/null 2>&1 && command -v pip3 >/dev/null 2>&1; then
    echo "installing kubernetes-validate from PyPI"
    pip3 install -q kubernetes-validate
    command -v pyenv >/dev/null 2>&1 && pyenv rehash
fi
# The AWS end-to-end test talks to a real AWS API implementation (moto's server) with the
# real AWS CLI, both from PyPI.
if ! command -v moto_server >/dev/null 2>&1 || ! command -v aws >/dev/null 2>&1; then
    if command -v pip3 >/dev/null 2>&1; then
        echo "installing moto[server] and awscli from PyPI"
        pip3 install -q 'moto[server]' awscli
        command -v pyenv >/dev/null 2>&1 && pyenv rehash
    fi
fi

# The AWS SDK (feature aws-api) is part of what is tested: api = "aws" sources.
cargo fmt --all -- --check
cargo clippy --all-targets --all-features --locked -- -D warnings
cargo test --locked --all-features
