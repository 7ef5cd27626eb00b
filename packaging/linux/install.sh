#!/bin/sh
# Install KnowMix for the current user (no root): the app folder goes to ~/.local/opt, a `knowmix`
# link to ~/.local/bin, and a menu entry with its icon to ~/.local/share. Run it from the unpacked
# tarball:  ./install.sh        Remove:  ./install.sh --uninstall
set -eu
here=$(cd "$(dirname "$0")" && pwd)
app=$(ls -d "$here"/knowmix-lite "$here"/knowmix-full 2>/dev/null | head -n 1)
[ -n "$app" ] || { echo "install.sh: no knowmix-lite or knowmix-full folder next to this script" >&2; exit 1; }
edition=$(basename "$app")
data=${XDG_DATA_HOME:-$HOME/.local/share}
opt=$HOME/.local/opt
bin=$HOME/.local/bin
if [ "${1:-}" = "--uninstall" ]; then
    rm -rf "$opt/$edition" "$data/applications/knowmix.desktop" "$data/icons/hicolor/256x256/apps/knowmix.png"
    [ -L "$bin/knowmix" ] && rm -f "$bin/knowmix"
    echo "KnowMix removed (your projects and ~/.knowmix are kept)."
    exit 0
fi
mkdir -p "$opt" "$bin" "$data/applications" "$data/icons/hicolor/256x256/apps"
rm -rf "$opt/$edition"
cp -a "$app" "$opt/$edition"
ln -sf "$opt/$edition/knowmix" "$bin/knowmix"
cp "$here/knowmix.png" "$data/icons/hicolor/256x256/apps/knowmix.png"
sed "s|^Exec=.*|Exec=\"$opt/$edition/knowmix\"|" "$here/knowmix.desktop" > "$data/applications/knowmix.desktop"
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database "$data/applications" || true
echo "KnowMix ($edition) installed: open it from the applications menu, or run $bin/knowmix"
echo "Check it works here: $bin/knowmix --self-check"
