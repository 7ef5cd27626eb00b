#!/bin/sh
# macOS: build "KnowMix <Edition>.app" with PyInstaller and wrap it in a compressed .dmg.
#
#   packaging/macos/build_dmg.sh lite      -> packaging/build/KnowMix-lite-0.1.0-macos-<arch>.dmg
#   packaging/macos/build_dmg.sh full
#
# Needs: macOS 11+, Xcode command line tools (clang, for llama.cpp), Python 3.10-3.12 from python.org
# or Homebrew (python3 on PATH, or PYTHON=/path/to/python3), and hdiutil/sips/iconutil (part of macOS).
# llama.cpp is built with Metal (Apple silicon GPUs) and without -march=native.
# Signing: the app is ad-hoc signed, which runs on the machine that built it and, after the user
# right-clicks > Open, on others. For distribution set CODESIGN_IDENTITY="Developer ID Application: ..."
# and notarise the .dmg (xcrun notarytool submit ... --wait; xcrun stapler staple <dmg>).
set -eu
edition=${1:-lite}
case "$edition" in lite|full) ;; *) echo "usage: $0 lite|full" >&2; exit 2 ;; esac
root=$(cd "$(dirname "$0")/../.." && pwd)
build="$root/packaging/build"
python=${PYTHON:-python3}
version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$root/pyproject.toml" | head -n 1)
Edition=$(printf '%s' "$edition" | awk '{print toupper(substr($0,1,1)) substr($0,2)}')
app="$build/dist/KnowMix $Edition.app"
dmg="$build/KnowMix-$edition-$version-macos-$(uname -m).dmg"

# 1. the .icns icon from the PNG (the spec picks it up from resources/icons/)
icns="$root/resources/icons/knowmix.icns"
if [ ! -f "$icns" ]; then
    set_dir="$build/knowmix.iconset"
    rm -rf "$set_dir"; mkdir -p "$set_dir"
    for s in 16 32 64 128 256; do
        sips -z $s $s "$root/resources/icons/knowmix.png" --out "$set_dir/icon_${s}x${s}.png" >/dev/null
        d=$((s * 2)); [ $d -le 256 ] && sips -z $d $d "$root/resources/icons/knowmix.png" --out "$set_dir/icon_${s}x${s}@2x.png" >/dev/null
    done
    iconutil -c icns "$set_dir" -o "$icns"
fi

# 2. the app (own venv, llama.cpp wheel, PyInstaller BUNDLE) and its self-check
# (SKIP_BUILD=1: the app is already built, e.g. by the CI step before)
[ "${SKIP_BUILD:-0}" = 1 ] || "$python" "$root/packaging/build.py" --edition "$edition" --self-check
[ -d "$app" ] || { echo "PyInstaller did not produce $app" >&2; exit 1; }

# 3. signing (ad-hoc unless an identity is given)
if [ -n "${CODESIGN_IDENTITY:-}" ]; then
    # hardened runtime (needed for notarisation) with the exceptions Python + ctypes + llama.cpp need
    codesign --force --deep --options runtime --timestamp --entitlements "$root/packaging/macos/entitlements.plist" \
        --sign "$CODESIGN_IDENTITY" "$app"
else
    codesign --force --deep --sign - "$app"
fi
codesign --verify --deep --strict "$app"

# 4. the disk image: the app and a link to /Applications
stage="$build/dmg-$edition"
rm -rf "$stage" "$dmg"; mkdir -p "$stage"
cp -R "$app" "$stage/"
ln -s /Applications "$stage/Applications"
hdiutil create -volname "KnowMix $Edition" -srcfolder "$stage" -fs HFS+ -format UDZO -imagekey zlib-level=9 -ov "$dmg"
rm -rf "$stage"
[ -n "${CODESIGN_IDENTITY:-}" ] && codesign --sign "$CODESIGN_IDENTITY" "$dmg"
echo "wrote $dmg ($(du -h "$dmg" | cut -f1))"
