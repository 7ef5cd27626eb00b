"""Can Qt open a window on this Linux desktop? Asked before Qt is imported, answered in one line.

When a system library that Qt's X11 platform plugin (``libqxcb.so``) needs is missing, creating
the ``QApplication`` does not raise: Qt prints "could not load the Qt platform plugin xcb" and
aborts the whole process (a core dump). The usual culprit since Qt 6.5 is ``libxcb-cursor0``,
which desktop installs often lack. So before the app imports Qt, this module finds the plugin in
the PySide6 package (from source or inside a PyInstaller app), lists the shared libraries it and
its Qt library cannot find (``ldd``; a small ELF reader where ``ldd`` is absent) and, if any are
missing, returns one line that names them and the packages that provide them on Debian/Ubuntu and
Fedora, so ``knowmix`` can print it and exit 2 instead of dumping core.

Nothing here imports Qt (Qt's import itself needs some of these libraries), and nothing raises:
when the answer cannot be known (no PySide6, an unreadable file), the check says nothing and Qt
gets its chance. It runs only where Qt would use a real display (``xcb`` or ``wayland``): the
``offscreen`` platform that the tests and ``--self-check`` use never runs it.
"""

from __future__ import annotations

import functools
import glob
import importlib.util
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence

# soname -> (Debian/Ubuntu package, Fedora package). What Qt's xcb and wayland plugins, libQt6Gui,
# libQt6XcbQpa, libQt6WaylandClient and libQt6DBus load from the system (their DT_NEEDED entries in
# the PySide6 6.11 wheel, read with readelf; earlier 6.x also wanted libxcb-xinerama/xinput), plus
# what those libraries pull in themselves. Qt's own libraries are not here: they
# ship inside PySide6, so a missing one means a broken install, not a missing system package.
LIBRARY_PACKAGES: dict[str, tuple[str, str]] = {
    # xcb-util family (each its own package on both distributions)
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-ewmh.so.2": ("libxcb-ewmh2", "xcb-util-wm"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxcb-util.so.1": ("libxcb-util1", "xcb-util"),
    # libxcb's extension libraries (one package each on Debian, all in libxcb on Fedora)
    "libxcb.so.1": ("libxcb1", "libxcb"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb"),
    "libxcb-xfixes.so.0": ("libxcb-xfixes0", "libxcb"),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb"),
    "libxcb-xinerama.so.0": ("libxcb-xinerama0", "libxcb"),
    "libxcb-xinput.so.0": ("libxcb-xinput0", "libxcb"),
    "libxcb-shm.so.0": ("libxcb-shm0", "libxcb"),
    "libxcb-sync.so.1": ("libxcb-sync1", "libxcb"),
    "libxcb-render.so.0": ("libxcb-render0", "libxcb"),
    "libxcb-glx.so.0": ("libxcb-glx0", "libxcb"),
    "libxcb-present.so.0": ("libxcb-present0", "libxcb"),
    "libxcb-dri2.so.0": ("libxcb-dri2-0", "libxcb"),
    "libxcb-dri3.so.0": ("libxcb-dri3-0", "libxcb"),
    # X11, keyboard, session management
    "libX11.so.6": ("libx11-6", "libX11"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb"),
    "libXau.so.6": ("libxau6", "libXau"),
    "libXdmcp.so.6": ("libxdmcp6", "libXdmcp"),
    "libXext.so.6": ("libxext6", "libXext"),
    "libXrender.so.1": ("libxrender1", "libXrender"),
    "libXi.so.6": ("libxi6", "libXi"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libSM.so.6": ("libsm6", "libSM"),
    "libICE.so.6": ("libice6", "libICE"),
    # OpenGL / EGL (glvnd)
    "libEGL.so.1": ("libegl1", "libglvnd-egl"),
    "libGL.so.1": ("libgl1", "libglvnd-glx"),
    "libGLX.so.0": ("libglx0", "libglvnd-glx"),
    "libOpenGL.so.0": ("libopengl0", "libglvnd-opengl"),
    "libGLdispatch.so.0": ("libglvnd0", "libglvnd"),
    "libgbm.so.1": ("libgbm1", "mesa-libgbm"),
    "libdrm.so.2": ("libdrm2", "libdrm"),
    # fonts, text, images
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig"),
    "libfreetype.so.6": ("libfreetype6", "freetype"),
    "libharfbuzz.so.0": ("libharfbuzz0b", "harfbuzz"),
    "libpng16.so.16": ("libpng16-16", "libpng"),
    "libexpat.so.1": ("libexpat1", "expat"),
    "libz.so.1": ("zlib1g", "zlib"),
    "libbrotlidec.so.1": ("libbrotli1", "brotli"),
    "libbrotlicommon.so.1": ("libbrotli1", "brotli"),
    "libbz2.so.1.0": ("libbz2-1.0", "bzip2-libs"),
    # GLib, D-Bus
    "libglib-2.0.so.0": ("libglib2.0-0", "glib2"),
    "libgthread-2.0.so.0": ("libglib2.0-0", "glib2"),
    "libgobject-2.0.so.0": ("libglib2.0-0", "glib2"),
    "libpcre2-8.so.0": ("libpcre2-8-0", "pcre2"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs"),
    "libsystemd.so.0": ("libsystemd0", "systemd-libs"),
    # Wayland
    "libwayland-client.so.0": ("libwayland-client0", "libwayland-client"),
    "libwayland-cursor.so.0": ("libwayland-cursor0", "libwayland-cursor"),
    "libwayland-egl.so.1": ("libwayland-egl1", "libwayland-egl"),
    "libffi.so.8": ("libffi8", "libffi"),
    "libzstd.so.1": ("libzstd1", "libzstd"),
    "libstdc++.so.6": ("libstdc++6", "libstdc++"),
    "libgcc_s.so.1": ("libgcc-s1", "libgcc"),
}

# Libraries that come with PySide6 (or with the KnowMix app): missing means reinstall, not apt.
_BUNDLED = re.compile(r"^lib(Qt6|pyside6|shiboken6|icu)", re.IGNORECASE)

# Qt's platform plugins that draw on a real desktop, and their files in plugins/platforms.
_PLUGIN_FILES = {"xcb": ("libqxcb.so",), "wayland": ("libqwayland-generic.so", "libqwayland-egl.so", "libqwayland.so")}

# Where a platform plugin can be, relative to the PySide6 package folder: Linux wheels and
# PyInstaller apps (PySide6/Qt/plugins), and the flat layout of some builds (PySide6/plugins).
_PLUGIN_DIRS = (("Qt", "plugins", "platforms"), ("plugins", "platforms"))


def pyside_dirs() -> list[Path]:
    """The PySide6 package folders that may hold Qt, without importing PySide6 (or Qt).

    In a PyInstaller app the package's files lie under ``sys._MEIPASS/PySide6``; from source
    the import system knows where the package is. Both are tried, the app's first."""
    out: list[Path] = []
    meipass = getattr(sys, "_MEIPASS", None)
    if meipass:
        out.append(Path(meipass) / "PySide6")
    try:
        spec = importlib.util.find_spec("PySide6")
    except (ImportError, ValueError):
        spec = None
    if spec is not None:
        for loc in spec.submodule_search_locations or ():
            out.append(Path(loc))
        if spec.origin and spec.origin not in ("namespace", "frozen", "built-in"):
            out.append(Path(spec.origin).parent)
    seen: set[Path] = set()
    return [p for p in out if p.is_dir() and not (p in seen or seen.add(p))]


def platform_plugins(
    platform: str, roots: Optional[Sequence[Path]] = None, env: Optional[Mapping[str, str]] = None
) -> list[Path]:
    """The plugin files that provide ``platform`` ('xcb', 'wayland'): first where
    QT_QPA_PLATFORM_PLUGIN_PATH points (Qt looks there first too), then in the PySide6 folders."""
    env_dir = (os.environ if env is None else env).get("QT_QPA_PLATFORM_PLUGIN_PATH")
    dirs = [Path(env_dir)] if env_dir else []
    for root in pyside_dirs() if roots is None else roots:
        dirs.extend(root.joinpath(*parts) for parts in _PLUGIN_DIRS)
    found: list[Path] = []
    for folder in dirs:
        for name in _PLUGIN_FILES.get(platform, ()):
            if (folder / name).is_file():
                found.append(folder / name)
    return found


# --------------------------------------------------------------------------- which libraries are missing


def parse_ldd(text: str) -> list[str]:
    """The libraries ``ldd`` could not find: the names on its ``NAME => not found`` lines, in order."""
    out: list[str] = []
    for line in text.splitlines():
        m = re.match(r"^\s*(\S+)\s+=>\s+not found\s*$", line)
        if m and m.group(1) not in out:
            out.append(m.group(1))
    return out


def _ldd_missing(path: Path, env: Optional[Mapping[str, str]] = None) -> Optional[list[str]]:
    """``ldd``'s answer, or None when ldd is absent or cannot read the file (then the ELF reader decides)."""
    ldd = shutil.which("ldd")
    if not ldd:
        return None
    try:
        proc = subprocess.run(
            [ldd, str(path)],
            capture_output=True,
            text=True,
            timeout=20,
            env=dict(env) if env is not None else None,
            errors="replace",
        )
    except (OSError, subprocess.SubprocessError):
        return None
    missing = parse_ldd(proc.stdout)
    if missing:
        return missing
    if proc.returncode != 0 or "=>" not in proc.stdout:
        return None  # "not a dynamic executable", a foreign ELF, ldd itself broken: not an answer
    return []


def elf_dynamic(path: Path) -> Optional[tuple[list[str], list[str]]]:
    """``(DT_NEEDED names, DT_RUNPATH/DT_RPATH folders)`` of an ELF file; None if it is not one.

    A minimal reader of the dynamic section (32/64-bit, either byte order), for systems where
    ``ldd`` is missing (it comes with glibc's tools, which slim images may leave out)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    if data[:4] != b"\x7fELF" or len(data) < 52:
        return None
    bits = {1: 32, 2: 64}.get(data[4])
    end = {1: "<", 2: ">"}.get(data[5])
    if bits is None or end is None:
        return None
    try:
        if bits == 64:
            (phoff,) = struct.unpack_from(end + "Q", data, 0x20)
            phentsize, phnum = struct.unpack_from(end + "HH", data, 0x36)
        else:
            (phoff,) = struct.unpack_from(end + "I", data, 0x1C)
            phentsize, phnum = struct.unpack_from(end + "HH", data, 0x2A)
        loads: list[tuple[int, int, int]] = []  # (vaddr, offset, filesz): to turn DT_STRTAB's address into an offset
        dyn: Optional[tuple[int, int]] = None
        for i in range(phnum):
            off = phoff + i * phentsize
            if bits == 64:
                p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz = struct.unpack_from(end + "IIQQQQ", data, off)
            else:
                p_type, p_offset, p_vaddr, _paddr, p_filesz = struct.unpack_from(end + "IIIII", data, off)
            if p_type == 1:
                loads.append((p_vaddr, p_offset, p_filesz))
            elif p_type == 2:
                dyn = (p_offset, p_filesz)
        if dyn is None:
            return [], []
        entry_fmt, entry_size = (end + "qQ", 16) if bits == 64 else (end + "iI", 8)
        needed_off: list[int] = []
        path_off: list[int] = []
        strtab_addr: Optional[int] = None
        for pos in range(dyn[0], dyn[0] + dyn[1], entry_size):
            tag, val = struct.unpack_from(entry_fmt, data, pos)
            if tag == 0:
                break
            if tag == 1:
                needed_off.append(val)
            elif tag in (15, 29):  # DT_RPATH, DT_RUNPATH
                path_off.append(val)
            elif tag == 5:
                strtab_addr = val
        if strtab_addr is None:
            return None
        strtab = next((off + strtab_addr - vaddr for vaddr, off, size in loads if vaddr <= strtab_addr < vaddr + size), None)
        if strtab is None:
            return None

        def string(at: int) -> str:
            start = strtab + at
            return data[start : data.index(b"\0", start)].decode("utf-8", "replace")

        needed = [string(o) for o in needed_off]
        paths = [p for o in path_off for p in string(o).split(":") if p]
        return needed, paths
    except (struct.error, ValueError, IndexError):
        return None


@functools.lru_cache(maxsize=1)
def _system_library_dirs() -> tuple[str, ...]:
    """The dynamic linker's own folders: /etc/ld.so.conf (with its includes) and the defaults."""
    dirs: list[str] = []

    def read(conf: str, depth: int = 0) -> None:
        try:
            lines = Path(conf).read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return
        for line in lines:
            line = line.split("#", 1)[0].strip()
            if line.startswith("include") and depth < 4:
                pattern = line.split(None, 1)[1] if len(line.split(None, 1)) > 1 else ""
                if pattern and not os.path.isabs(pattern):
                    pattern = os.path.join(os.path.dirname(conf), pattern)
                for inc in sorted(glob.glob(pattern)):
                    read(inc, depth + 1)
            elif line.startswith("/"):
                dirs.append(line)

    read("/etc/ld.so.conf")
    triplet = {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu"}.get(os.uname().machine, "")
    for base in ("/lib", "/usr/lib"):
        if triplet:
            dirs.append(f"{base}/{triplet}")
    dirs += ["/lib64", "/usr/lib64", "/lib", "/usr/lib"]
    return tuple(dict.fromkeys(dirs))


def _elf_missing(path: Path, env: Optional[Mapping[str, str]] = None) -> Optional[list[str]]:
    """What ``ldd`` would say is missing, found by walking DT_NEEDED the way the dynamic linker
    searches: LD_LIBRARY_PATH, then the needing file's RUNPATH ($ORIGIN expanded), then the
    system folders. None when ``path`` is not a readable ELF file."""
    environ = os.environ if env is None else env
    ld_path = [d for d in environ.get("LD_LIBRARY_PATH", "").split(":") if d]
    first = elf_dynamic(path)
    if first is None:
        return None
    missing: list[str] = []
    seen: set[str] = set()
    todo: list[tuple[Path, list[str], list[str]]] = [(path, *first)]
    while todo:
        owner, needed, runpath = todo.pop(0)
        origin = str(owner.resolve().parent)
        dirs = ld_path + [p.replace("$ORIGIN", origin).replace("${ORIGIN}", origin) for p in runpath]
        dirs += list(_system_library_dirs())
        for name in needed:
            if name in seen:
                continue
            seen.add(name)
            found = next((Path(d) / name for d in dirs if (Path(d) / name).exists()), None)
            if found is None:
                missing.append(name)
                continue
            info = elf_dynamic(found)
            if info is not None:
                todo.append((found, *info))
    return missing


def missing_libraries(path: Path, env: Optional[Mapping[str, str]] = None) -> Optional[list[str]]:
    """The shared libraries ``path`` needs, directly or through the libraries it loads, that this
    system cannot find; [] when none are missing, None when it cannot be told."""
    result = _ldd_missing(path, env)
    if result is None:
        result = _elf_missing(path, env)
    return result


# --------------------------------------------------------------------------- what to tell the user


def packages_for(libraries: Iterable[str]) -> tuple[list[str], list[str], list[str], list[str]]:
    """``(Debian/Ubuntu packages, Fedora packages, unknown libraries, Qt's own libraries)``, each
    without repeats and in the order the libraries came."""
    debian: list[str] = []
    fedora: list[str] = []
    unknown: list[str] = []
    bundled: list[str] = []
    for lib in libraries:
        if lib in LIBRARY_PACKAGES:
            deb, fed = LIBRARY_PACKAGES[lib]
            debian += [deb] if deb not in debian else []
            fedora += [fed] if fed not in fedora else []
        elif _BUNDLED.match(lib):
            bundled += [lib] if lib not in bundled else []
        else:
            unknown += [lib] if lib not in unknown else []
    return debian, fedora, unknown, bundled


def missing_libraries_message(libraries: Sequence[str], platform: str = "xcb") -> str:
    """One line: which libraries are missing and the commands that install them."""
    what = {"xcb": "Qt's X11 (xcb) platform plugin", "wayland": "Qt's Wayland platform plugin"}.get(
        platform, "Qt's platform plugins (xcb, wayland)"
    )
    debian, fedora, unknown, bundled = packages_for(libraries)
    needs = "needs" if platform in ("xcb", "wayland") else "need"
    parts = [f"the desktop app cannot start: {what} {needs} libraries this system lacks: {', '.join(libraries)}."]
    if debian:
        parts.append(
            f"Install them with: sudo apt-get install {' '.join(debian)} (Debian/Ubuntu)"
            f" or sudo dnf install {' '.join(fedora)} (Fedora), then start knowmix again."
        )
    if unknown:
        names = " ".join(unknown)
        parts.append(
            f"Find the package that provides {', '.join(unknown)} with: apt-file search {names}"
            f" (Debian/Ubuntu) or dnf provides '*/{unknown[0]}' (Fedora)."
        )
    if bundled:
        parts.append(
            f"{', '.join(bundled)} should come with KnowMix itself: reinstall KnowMix"
            " (from source: .venv/bin/pip install --force-reinstall PySide6-Essentials)."
        )
    parts.append("The command line works without them: knowmix --help.")
    return " ".join(parts)


def no_display_message() -> str:
    return (
        "No display found (neither DISPLAY nor WAYLAND_DISPLAY is set), so the KnowMix window cannot open. "
        "On a server or over SSH, use the command line: knowmix --help, or knowmix demo (make demo from a "
        "source checkout) for the whole job on the built-in model; QT_QPA_PLATFORM=offscreen knowmix "
        "--self-check tests the app without a screen."
    )


def platforms_to_check(env: Optional[Mapping[str, str]] = None) -> Optional[list[str]]:
    """The platform plugins Qt will try here, in its order; [] when the check does not apply
    (not Linux, or a platform such as ``offscreen`` that needs no desktop libraries); None when
    there is no display at all.

    Qt (6.5+) without QT_QPA_PLATFORM tries Wayland when WAYLAND_DISPLAY is set and X11 (xcb)
    when DISPLAY is set, and aborts only when every one fails; QT_QPA_PLATFORM names its own
    list ("xcb", "wayland;xcb", "xcb:option=...")."""
    environ = os.environ if env is None else env
    if not sys.platform.startswith("linux"):
        return []
    requested = environ.get("QT_QPA_PLATFORM", "").strip()
    if requested:
        names = [part.split(":", 1)[0].strip() for part in requested.split(";") if part.strip()]
        if not names or any(name not in _PLUGIN_FILES for name in names):
            return []  # offscreen, minimal, vnc, eglfs...: another plugin, another story
        if names == ["xcb"] and not environ.get("DISPLAY"):
            return None
        return names
    names = (["wayland"] if environ.get("WAYLAND_DISPLAY") else []) + (["xcb"] if environ.get("DISPLAY") else [])
    return names or None


def _x11_address(display: str) -> Optional[tuple[str, object]]:
    """Where the X server of ``display`` listens: ("unix", path) or ("tcp", (host, port)); None
    when the name is not one we can read (Qt then gets its chance)."""
    m = re.fullmatch(r"(?:(?P<proto>[a-z]+)/)?(?P<host>[^:]*):(?P<num>\d+)(?:\.\d+)?", display.strip())
    if m is None:
        return None
    host, num, proto = m.group("host"), int(m.group("num")), m.group("proto")
    if host.startswith("/"):  # macOS launchd style: the socket path itself
        return ("unix", display.rsplit(":", 1)[0])
    if not host or host == "unix" or proto == "unix":
        return ("unix", f"/tmp/.X11-unix/X{num}")
    return ("tcp", (host, 6000 + num))


def display_reachable(platform: str, env: Mapping[str, str], timeout: float = 2.0) -> Optional[bool]:
    """Does a display server answer where ``platform``'s variable points? None: cannot be told.

    Qt aborts the process ("could not connect to display", then "no Qt platform plugin could be
    initialized") when DISPLAY names an X server that is not running, e.g. a stale DISPLAY in an SSH
    or container session. A plain socket connect answers that before Qt is imported."""
    import socket

    if platform == "xcb":
        address = _x11_address(env.get("DISPLAY", ""))
        if address is None:
            return None
        kind, where = address
        if kind == "unix":
            path = str(where)
            for target in ("\0" + path, path):  # Linux X servers listen on the abstract socket too
                try:
                    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                        sock.settimeout(timeout)
                        sock.connect(target)
                    return True
                except OSError:
                    continue
            return False
        try:
            with socket.create_connection(where, timeout=timeout):  # type: ignore[arg-type]
                return True
        except OSError:
            return False
    if platform == "wayland":
        name = env.get("WAYLAND_DISPLAY", "")
        if not name:
            return False
        runtime = env.get("XDG_RUNTIME_DIR", "")
        path = name if name.startswith("/") else os.path.join(runtime, name) if runtime else ""
        if not path:
            return None
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(path)
            return True
        except OSError:
            return False
    return None


def unreachable_display_message(env: Mapping[str, str]) -> str:
    shown = "; ".join(f"{k}={env[k]}" for k in ("DISPLAY", "WAYLAND_DISPLAY") if env.get(k))
    return (
        f"No display server answers at {shown}, so the KnowMix window cannot open. Start KnowMix from the "
        "desktop session itself (or fix DISPLAY, e.g. ssh -X); without a screen use the command line: "
        "knowmix --help, or knowmix demo for the whole job on the built-in model."
    )


def startup_problem(env: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """Why the window cannot open here, in one line, or None (including when it cannot be told).

    Called before Qt is imported; its answer replaces Qt's abort with a message and exit code 2."""
    environ = os.environ if env is None else env
    platforms = platforms_to_check(environ)
    if platforms is None:
        return no_display_message()
    if not platforms:
        return None
    return _library_problem(platforms, environ) or _display_problem(platforms, environ)


def _display_problem(platforms: Sequence[str], environ: Mapping[str, str]) -> Optional[str]:
    """The unreachable-display line when no platform's display server answers (asked after the
    libraries, which a user must fix whichever display they use)."""
    try:
        if all(display_reachable(platform, environ) is False for platform in platforms):
            return unreachable_display_message(environ)
    except Exception:  # noqa: BLE001  (a diagnostic must never be the reason the app does not start)
        pass
    return None


def _library_problem(platforms: Sequence[str], environ: Mapping[str, str]) -> Optional[str]:
    """The missing-libraries line for the platform plugins Qt will try, or None."""
    try:
        roots = pyside_dirs()
        if not roots:
            return None  # no PySide6: the import fails next, with its own message
        broken: dict[str, list[str]] = {}
        for platform in platforms:
            plugins = platform_plugins(platform, roots, environ)
            if not plugins:
                if platform == "xcb":
                    broken[platform] = ["libqxcb.so"]  # the plugin file itself is gone
                    continue
                broken[platform] = []
                continue
            answers = [missing_libraries(p, environ) for p in plugins]
            if any(a is None or a == [] for a in answers):
                return None  # one of Qt's candidates loads (or we cannot tell): let Qt start
            broken[platform] = next(a for a in answers if a)
    except Exception:  # noqa: BLE001  (a diagnostic must never be the reason the app does not start)
        return None
    if broken.get("xcb") == ["libqxcb.so"]:
        return (
            "the desktop app cannot start: Qt's X11 platform plugin (platforms/libqxcb.so) is missing from this "
            "installation; reinstall KnowMix (from source: .venv/bin/pip install --force-reinstall PySide6-Essentials). "
            "The command line works: knowmix --help."
        )
    libs: list[str] = []
    for found in broken.values():
        libs += [lib for lib in found if lib not in libs]
    if not libs:
        return None
    named = [platform for platform, found in broken.items() if found]
    which = named[0] if len(named) == 1 else "any"
    return missing_libraries_message(libs, which)
