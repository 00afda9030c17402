#!/usr/bin/env bash
# Builds the sgprobe image from this source tree, reproducibly: the binary is built here with
# cargo (--locked), stripped, and every file and the image are stamped with the last commit's
# time (SOURCE_DATE_EPOCH overrides it), so the same source gives the same image digest.
#   deploy/container/build.sh [TAG]
# SGPROBE_PROFILE is cargo's profile (default release); SGPROBE_FEATURES its features (default
# aws-api: api = "aws" sources); SGPROBE_BINARY ships a binary already built from this tree
# instead (the tests' own, which cargo is busy running); SGPROBE_BUILDER is buildah or podman (default: whichever is
# installed); BUILDER_ARGS go before the builder's subcommand (e.g. --root DIR
# --storage-driver vfs). Needs: cargo, strip (binutils), ldd, and the host's CA bundle
# (Debian's ca-certificates).
set -euo pipefail
cd "$(dirname "$0")/../.."
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
tag=${1:-localhost/sgprobe:$version}
profile=${SGPROBE_PROFILE:-release}
features=${SGPROBE_FEATURES:-aws-api}
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
if [ -n "${SGPROBE_BINARY:-}" ]; then
    binary=$SGPROBE_BINARY
else
    cargo build --locked --profile "$profile" --features "$features" --bin sgprobe
    case "$profile" in dev) out=debug ;; *) out=$profile ;; esac
    binary=target/$out/sgprobe
fi
certificates=/etc/ssl/certs/ca-certificates.crt
[ -r "$certificates" ] || { echo "no CA bundle at $certificates: apt-get install ca-certificates" >&2; exit 1; }
builder=${SGPROBE_BUILDER:-$(command -v buildah >/dev/null 2>&1 && echo buildah || echo podman)}
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
root=$context/root
mkdir -p "$root/usr/bin" "$root/etc/sgprobe" "$root/etc/ssl/certs" "$root/run/sgprobe" "$root/tmp"
cp "$binary" "$root/usr/bin/sgprobe"
strip --strip-all "$root/usr/bin/sgprobe"
# The dynamic loader and every library the binary links, at the paths it looks for them.
for lib in $(ldd "$binary" | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
done
cp "$certificates" "$root/etc/ssl/certs/ca-certificates.crt"
# A config that runs as it is: the example's groups and instances (mount your own over it),
# its metrics on every interface, where EXPOSE says.
sed 's/^metrics_listen = .*/metrics_listen = ":9477"/' deploy/example/sgprobe.toml >"$root/etc/sgprobe/sgprobe.toml"
cp -r deploy/example/exports "$root/etc/sgprobe/exports"
chmod 1777 "$root/tmp"
chmod 0777 "$root/run/sgprobe"
cp Containerfile "$context/Containerfile"
args=(--timestamp "$epoch" --identity-label=false --build-arg "VERSION=$version" --build-arg "REVISION=$revision")
# shellcheck disable=SC2086
case "$builder" in
    buildah) buildah ${BUILDER_ARGS:-} bud --quiet "${args[@]}" -f "$context/Containerfile" -t "$tag" "$context" >/dev/null ;;
    *) "$builder" ${BUILDER_ARGS:-} build --quiet "${args[@]}" -f "$context/Containerfile" -t "$tag" "$context" >/dev/null ;;
esac
echo "$tag"
