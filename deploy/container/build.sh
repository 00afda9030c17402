#!/usr/bin/env bash
# Builds the sgprobe image from the Containerfile at the repository's root.
#   deploy/container/build.sh [TAG]
# SGPROBE_BINARY names the binary to ship (default: a release build, made if missing);
# SGPROBE_BUILDER is buildah or podman (default: whichever is installed); BUILDER_ARGS go
# before the builder's subcommand (e.g. --root DIR --storage-driver vfs).
set -euo pipefail
cd "$(dirname "$0")/../.."
tag=${1:-localhost/sgprobe:$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)}
binary=${SGPROBE_BINARY:-target/release/sgprobe}
if [ ! -x "$binary" ]; then
    cargo build --release --locked --features aws-api
fi
builder=${SGPROBE_BUILDER:-$(command -v buildah >/dev/null 2>&1 && echo buildah || echo podman)}
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
mkdir -p "$context/root/usr/bin" "$context/root/etc/sgprobe" "$context/root/run/sgprobe"
cp "$binary" "$context/root/usr/bin/sgprobe"
# The dynamic loader and every library the binary links, at the paths it looks for them.
for lib in $(ldd "$binary" | grep -o '/[^ ]*'); do
    mkdir -p "$context/root$(dirname "$lib")"
    cp -L "$lib" "$context/root$lib"
done
cp Containerfile "$context/Containerfile"
# shellcheck disable=SC2086
case "$builder" in
    buildah) buildah ${BUILDER_ARGS:-} bud --quiet -f "$context/Containerfile" -t "$tag" "$context" ;;
    *) "$builder" ${BUILDER_ARGS:-} build --quiet -f "$context/Containerfile" -t "$tag" "$context" ;;
esac
echo "$tag"
