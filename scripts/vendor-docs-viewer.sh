#!/usr/bin/env bash
# Vendors the interactive API docs viewer (swagger-ui-dist, Apache-2.0) from npm
# into crates/web-assets/assets/docs/vendor/swagger-ui/, which is committed, so
# that builds never need npm and `GET /docs` needs no CDN.
#
#   bash scripts/vendor-docs-viewer.sh [version]
#
# Idempotent: packs the pinned version into a temporary directory, extracts only
# the files the viewer needs plus the licence files, verbatim, and replaces the
# vendor directory with them; running it twice leaves the same files. The pinned
# version's tarball is checked against its sha256. To upgrade, change
# pinned_version and pinned_sha256 below (or pass a version to try one), run it,
# check `git diff --stat` and that crates/web-assets still passes its tests
# (no network URLs in docs/, validatorUrl still honoured), and commit.
set -euo pipefail
cd "$(dirname "$0")/.."

package=swagger-ui-dist
pinned_version=5.35.0
pinned_sha256=1b8e891893404ea4c3558b6a87e2a3e494e7eedba41168c2ece5800a391a6ea6
version=${1:-$pinned_version}
dest=crates/web-assets/assets/docs/vendor/swagger-ui
# What the page loads, and the licence files that must travel with it:
# LICENSE and NOTICE (Apache-2.0 §4) and the notices of the third-party code
# bundled into swagger-ui-bundle.js.
files=(swagger-ui-bundle.js swagger-ui.css LICENSE)
optional=(NOTICE swagger-ui-bundle.js.LICENSE.txt)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

(cd "$tmp" && npm pack --silent "$package@$version" >/dev/null)
tarball=$(ls "$tmp"/*.tgz)
tar -xzf "$tarball" -C "$tmp"
src=$tmp/package

sha256=$(sha256sum "$tarball" | cut -d' ' -f1)
if [ "$version" = "$pinned_version" ] && [ "$sha256" != "$pinned_sha256" ]; then
    echo "vendor-docs-viewer: $package@$version tarball has sha256 $sha256, expected $pinned_sha256" >&2
    exit 1
fi

got=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$src/package.json" | head -n1)
if [ "$got" != "$version" ]; then
    echo "vendor-docs-viewer: asked for $package@$version, npm gave $got" >&2
    exit 1
fi

rm -rf "$dest"
mkdir -p "$dest"
for f in "${files[@]}"; do
    cp "$src/$f" "$dest/$f"
done
for f in "${optional[@]}"; do
    if [ -f "$src/$f" ]; then cp "$src/$f" "$dest/$f"; fi
done
cat > "$dest/VERSION" <<EOF
$package@$version
tarball sha256 $sha256
vendored by scripts/vendor-docs-viewer.sh
EOF

# The page refers to the vendored files with their version in the URL (they are
# served as immutable), so a new version must change those URLs.
index=crates/web-assets/assets/docs/index.html
if [ -f "$index" ]; then
    sed -i -E "s#(/docs/vendor/swagger-ui/[^\"?]+)\?v=[^\"]*#\1?v=$version#g" "$index"
fi

echo "vendor-docs-viewer: $package@$version -> $dest"
(cd "$dest" && wc -c -- * | sed 's/^/  /')
