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
# The image carries the host's CA bundle and a stripped binary; its TLS test makes a CA.
[ -r /etc/ssl/certs/ca-certificates.crt ] || need+=(ca-certificates)
command -v strip >/dev/null 2>&1 || need+=(binutils)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
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

# A fresh machine builds once: incremental caches would only double the target folder.
export CARGO_INCREMENTAL=0
# The AWS SDK (feature aws-api) is part of what is tested: api = "aws" sources.
cargo fmt --all -- --check
cargo clippy --all-targets --all-features --locked -- -D warnings
# The image, built twice from this source tree (the run's one release build) into an image
# store of the run's own: tests/container.rs compares the two and runs what is inside.
if [ "$(id -u)" = 0 ] && command -v buildah >/dev/null 2>&1; then
    SGPROBE_IMAGE_STORE=$(mktemp -d)
    export SGPROBE_IMAGE_STORE
    trap 'buildah --root "$SGPROBE_IMAGE_STORE/root" --runroot "$SGPROBE_IMAGE_STORE/run" --storage-driver vfs rmi --all --force >/dev/null 2>&1 || true; rm -rf "$SGPROBE_IMAGE_STORE"' EXIT
    for build in first second; do
        SGPROBE_BUILDER=buildah \
            BUILDER_ARGS="--root $SGPROBE_IMAGE_STORE/root --runroot $SGPROBE_IMAGE_STORE/run --storage-driver vfs" \
            deploy/container/build.sh "localhost/sgprobe:$build"
    done
fi
cargo test --locked --all-features
