#!/bin/sh
# Wrap a built one-folder app into an AppImage.
#   packaging/linux/build_appimage.sh lite      -> packaging/build/KnowMix-lite-x86_64.AppImage
# Needs appimagetool on PATH (https://github.com/AppImage/appimagetool/releases; it is not on PyPI,
# which is why `make package` does not run this) and the app built first: `make package-lite`.
set -eu
edition=${1:-lite}
root=$(cd "$(dirname "$0")/../.." && pwd)
dist="$root/packaging/build/dist/knowmix-$edition"
out="$root/packaging/build/KnowMix-$edition-$(uname -m).AppImage"
[ -x "$dist/knowmix" ] || { echo "build the $edition edition first: make package-$edition" >&2; exit 1; }
command -v appimagetool >/dev/null || { echo "appimagetool is not on PATH (see the comment at the top)" >&2; exit 1; }
appdir="$root/packaging/build/AppDir-$edition"
rm -rf "$appdir"
mkdir -p "$appdir/usr/lib" "$appdir/usr/share/applications" "$appdir/usr/share/icons/hicolor/256x256/apps"
cp -a "$dist" "$appdir/usr/lib/knowmix"
sed "s/@EDITION@/$edition/" "$root/packaging/linux/knowmix.desktop" > "$appdir/knowmix.desktop"
cp "$appdir/knowmix.desktop" "$appdir/usr/share/applications/"
cp "$root/resources/icons/knowmix.png" "$appdir/knowmix.png"
cp "$root/resources/icons/knowmix.png" "$appdir/usr/share/icons/hicolor/256x256/apps/"
cat > "$appdir/AppRun" <<'RUN'
#!/bin/sh
here=$(dirname "$(readlink -f "$0")")
exec "$here/usr/lib/knowmix/knowmix" "$@"
RUN
chmod +x "$appdir/AppRun"
ARCH=$(uname -m) appimagetool "$appdir" "$out"
echo "wrote $out"
