#!/usr/bin/env bash
# Builds berth_<version>_<arch>.deb from an already built tree, with dpkg-deb (no debhelper).
# Usage: scripts/mkdeb.sh BUILD_DIR ARCH OUT_DIR
#   ARCH: amd64 | arm64 | armhf (the binaries in BUILD_DIR must be for it)
#   DEB_REVISION (env, default 1): the Debian revision; the version is <BERTH_VERSION>-<revision>
# Runtime dependencies come from dpkg-shlibdeps; the packaging files are ports/linux/debian/.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$1" && pwd); arch=$2; out=$3
deb=$here/ports/linux/debian
case "$arch" in
  amd64) cross= ;;
  arm64) cross=aarch64-linux-gnu- ;;
  armhf) cross=arm-linux-gnueabihf- ;;
  *) echo "mkdeb: unknown architecture '$arch' (amd64, arm64 or armhf)" >&2; exit 2 ;;
esac
upstream=$(sed -n 's/^#define BERTH_VERSION "\(.*\)"$/\1/p' "$here/agent/base/version.h")
[ -n "$upstream" ] || { echo "mkdeb: no BERTH_VERSION in agent/base/version.h" >&2; exit 1; }
version=$upstream-${DEB_REVISION:-1}
for b in berthd berthctl; do
  [ -x "$build/$b" ] || { echo "mkdeb: $build/$b missing (build it first)" >&2; exit 1; }
done

stage=$build/deb/$arch
rm -rf "$stage"
R=$stage/root
doc=$R/usr/share/doc/berth
install -d -m 0755 "$R/DEBIAN" "$R/usr/bin" "$R/lib/systemd/system" "$R/etc/berth" "$doc/examples" \
  "$R/usr/share/man/man1" "$R/usr/share/man/man8" "$R/usr/share/lintian/overrides"
for b in berthd berthctl; do
  # what dh_strip does: no debug info, no .comment/.note
  "${cross}strip" --remove-section=.comment --remove-section=.note --strip-unneeded \
    -o "$R/usr/bin/$b" "$build/$b"
  chmod 0755 "$R/usr/bin/$b"
done
sed -e 's|@BINDIR@|/usr/bin|g' -e 's|@DOCDIR@|/usr/share/doc/berth|g' \
  "$here/ports/linux/berthd.service.in" > "$R/lib/systemd/system/berthd.service"
chmod 0644 "$R/lib/systemd/system/berthd.service"
install -m 0640 "$here/docs/examples/config.json" "$R/etc/berth/config.json"
install -m 0640 "$here/docs/examples/deployments.json" "$R/etc/berth/deployments.json"
install -m 0644 "$here/README.md" "$here"/docs/*.md "$doc/"
install -m 0644 "$here"/docs/examples/*.json "$doc/examples/"
install -m 0644 "$deb/copyright" "$doc/copyright"
date=$(date -R -d "@${SOURCE_DATE_EPOCH:-$(git -C "$here" log -1 --format=%ct 2>/dev/null || date +%s)}")
sed -e "s|@VERSION@|$version|" -e "s|@DATE@|$date|" "$deb/changelog" | gzip -9n > "$doc/changelog.Debian.gz"
gzip -9n < "$deb/berthd.8" > "$R/usr/share/man/man8/berthd.8.gz"
gzip -9n < "$deb/berthctl.1" > "$R/usr/share/man/man1/berthctl.1.gz"
install -m 0644 "$deb/lintian-overrides" "$R/usr/share/lintian/overrides/berth"
find "$R/usr/share" -type f -exec chmod 0644 {} +

# runtime library dependencies, as dpkg-shlibdeps reads them from the binaries
mkdir -p "$stage/debian"
printf 'Source: berth\n\nPackage: berth\nArchitecture: any\n' > "$stage/debian/control"
depends=$(cd "$stage" && DEB_HOST_ARCH=$arch dpkg-shlibdeps -O root/usr/bin/berthd root/usr/bin/berthctl 2>/dev/null \
  | sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "mkdeb: dpkg-shlibdeps found no dependencies for $arch" >&2; exit 1; }

install -m 0755 "$deb/postinst" "$deb/prerm" "$deb/postrm" "$R/DEBIAN/"
install -m 0644 "$deb/conffiles" "$R/DEBIAN/"
size=$(du -sk --exclude=DEBIAN "$R" | cut -f1)
sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@SIZE@|$size|" -e "s|@DEPENDS@|$depends|" \
  "$deb/control.in" > "$R/DEBIAN/control"
(cd "$R" && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -printf '%P\0' \
  | sort -z | xargs -0 md5sum) > "$R/DEBIAN/md5sums"
chmod 0644 "$R/DEBIAN/md5sums"

mkdir -p "$out"
pkg=$out/berth_${version}_${arch}.deb
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$here" log -1 --format=%ct 2>/dev/null || date +%s)} \
  dpkg-deb --root-owner-group -Zxz --build "$R" "$pkg" >/dev/null
echo "deb: $pkg $(stat -c %s "$pkg") bytes"
