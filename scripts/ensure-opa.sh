#!/usr/bin/env bash
# Makes an OPA CLI available at $1 (a symlink), for `opa build -t wasm`, `opa test`, `opa check`, `opa fmt`.
# Order: $OPA, an `opa` on PATH, the per-user cache, and last a build from Debian's own packages
# (OPA's source and the Go toolchain), unpacked into a private directory: the machine's apt sources and
# installed packages are never touched. See README.md ("The OPA CLI") for installing OPA yourself instead.
set -euo pipefail

link=${1:?usage: ensure-opa.sh LINK_PATH}
opa_version=1.4.2
go_version=1.27
cache_root=${XDG_CACHE_HOME:-$HOME/.cache}/jitgate
cached=$cache_root/opa-$opa_version/opa

fail() {
  echo "ensure-opa: $1" >&2
  echo "ensure-opa: fix: $2" >&2
  exit 1
}

use() {
  mkdir -p "$(dirname "$link")"
  ln -sfn "$1" "$link"
  echo "opa: $1 ($("$1" version 2>/dev/null | sed -n 's/^Version: //p'))" >&2
}

if [ -n "${OPA:-}" ]; then
  [ -x "$OPA" ] || fail "\$OPA is set to '$OPA', which is not an executable file" "point \$OPA at an opa binary, or unset it"
  use "$OPA"; exit 0
fi
if on_path=$(command -v opa 2>/dev/null) && [ "$(readlink -f "$on_path")" != "$(readlink -f "$link" 2>/dev/null)" ]; then
  use "$on_path"; exit 0
fi
if [ -x "$cached" ]; then
  use "$cached"; exit 0
fi

command -v apt-get >/dev/null && command -v dpkg >/dev/null ||
  fail "no opa on PATH and this machine has no apt-get/dpkg to build one from Debian's packages" \
    "install OPA $opa_version or later from its official releases and put it on PATH (or set \$OPA)"

# The Debian mirror this machine already uses, read from its own apt configuration.
mirror=$(
  { grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' || true
    grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print $2}' || true
  } | grep -E '/debian/?$' | head -n 1 || true
)
[ -n "$mirror" ] || fail "found no Debian mirror in /etc/apt/sources.list or /etc/apt/sources.list.d" \
  "install OPA $opa_version from its official releases and put it on PATH (or set \$OPA)"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -r "$keyring" ] || fail "the Debian archive keyring $keyring is missing" "apt-get install debian-archive-keyring, or install OPA yourself"

mkdir -p "$cache_root"
work=$(mktemp -d "$cache_root/opa-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "ensure-opa: building OPA $opa_version from Debian's packages in $work (about a minute; needs ~3.5 GB free, freed after)" >&2

mkdir -p "$work/sources" "$work/lists/partial" "$work/cache/archives/partial" "$work/debs" "$work/root"
: > "$work/status"
cat > "$work/sources/debian.sources" <<SRC
Types: deb
URIs: $mirror
Suites: sid trixie
Components: main
Signed-By: $keyring
SRC
apt_opts=(
  -o Dir::State::Lists="$work/lists" -o Dir::Etc::SourceList=/dev/null
  -o Dir::Etc::SourceParts="$work/sources" -o Dir::Cache="$work/cache"
  -o Dir::State::status="$work/status" -o Dir::Etc::Preferences=/dev/null
  -o Dir::Etc::PreferencesParts="$work/sources" -o Debug::NoLocking=1
  -o APT::Default-Release=sid -o Acquire::Check-Valid-Until=false -q
)
apt-get "${apt_opts[@]}" update >"$work/apt-update.log" 2>&1 ||
  { cat "$work/apt-update.log" >&2; fail "apt-get update against $mirror (sid, trixie) failed (log above)" "check the network to the Debian mirror, or install OPA yourself"; }

pkgs=$(apt-cache "${apt_opts[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts \
  --no-breaks --no-replaces --no-enhances golang-github-open-policy-agent-opa-dev "golang-$go_version-go" \
  "golang-$go_version-src" golang-github-sergi-go-diff-dev | grep -E '^golang-' | sort -u)
[ -n "$pkgs" ] || fail "Debian sid does not list golang-github-open-policy-agent-opa-dev" "install OPA yourself"
echo "ensure-opa: fetching $(wc -w <<<"$pkgs") packages" >&2
(cd "$work/debs" && apt-get "${apt_opts[@]}" download $pkgs >"$work/download.log" 2>&1) ||
  { tail -n 20 "$work/download.log" >&2; fail "apt-get download failed (log above)" "retry, or install OPA yourself"; }
# sid's tablewriter 1.x changed its API; OPA 1.4.2 builds against the 0.0.5 that trixie carries.
rm -f "$work"/debs/golang-github-olekukonko-tablewriter-dev_*.deb
(cd "$work/debs" && apt-get "${apt_opts[@]}" download golang-github-olekukonko-tablewriter-dev/trixie >>"$work/download.log" 2>&1) ||
  { tail -n 20 "$work/download.log" >&2; fail "apt-get download of tablewriter (trixie) failed" "retry, or install OPA yourself"; }
for deb in "$work"/debs/*.deb; do dpkg -x "$deb" "$work/root"; done

root=$work/root
goroot=$root/usr/lib/go-$go_version
[ -x "$goroot/bin/go" ] || fail "the Go toolchain did not unpack to $goroot" "install OPA yourself"
mkdir -p "$(dirname "$cached")"
GO111MODULE=off GOPATH="$root/usr/share/gocode" GOROOT="$goroot" GOTOOLCHAIN=local CGO_ENABLED=0 \
  GOCACHE="$work/gocache" GOFLAGS= "$goroot/bin/go" build -o "$cached.tmp" github.com/open-policy-agent/opa \
  >"$work/build.log" 2>&1 ||
  { tail -n 30 "$work/build.log" >&2; fail "go build of OPA failed (log above)" "install OPA $opa_version yourself and put it on PATH"; }
# Keep the two OPA sources that scripts/gen-capabilities.ts reads (which builtins the Wasm compiler implements).
src=$root/usr/share/gocode/src/github.com/open-policy-agent/opa
cp "$src/internal/compiler/wasm/wasm.go" "$src/v1/ast/builtins.go" "$(dirname "$cached")/"
mv "$cached.tmp" "$cached"
use "$cached"
