"""`knowmix` on a Linux desktop that lacks a library Qt's xcb plugin needs: one line and exit 2,
never Qt's "could not load the Qt platform plugin" abort (gui.platform_check).

The end-to-end tests make a library really missing without root: ``LD_LIBRARY_PATH`` points at a
folder holding a copy of PySide6's ``libQt6XcbQpa.so.6`` whose DT_NEEDED entry
``libxcb-cursor.so.0`` is renamed (same length, in place) to ``libxcb-kmtest.so.0``, which no system
has. The dynamic linker finds that copy first, for Qt and for ``ldd`` alike, so Qt really aborts
(checked as a control) and ``knowmix`` must say so in words instead.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gui import platform_check as pc

REPO = Path(__file__).resolve().parents[1]
LINUX = sys.platform.startswith("linux")
FAKE = "libxcb-kmtest.so.0"
GLIBC = {"libc.so.6", "libm.so.6", "libdl.so.2", "libpthread.so.0", "librt.so.1", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1"}

LDD_OUTPUT = """\
\tlinux-vdso.so.1 (0x00007ffd1a9f2000)
\tlibQt6XcbQpa.so.6 => /opt/x/PySide6/Qt/plugins/platforms/../../lib/libQt6XcbQpa.so.6 (0x00007f1e3c800000)
\tlibxcb-cursor.so.0 => not found
\tlibxcb-icccm.so.4 => not found
\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007f1e3c6d0000)
\tlibxcb-icccm.so.4 => not found
\tlibweird.so.3 => not found
\t/lib64/ld-linux-x86-64.so.2 (0x00007f1e3ce2d000)
"""


# ----------------------------------------------------------------------------------- pure functions


def test_parse_ldd_lists_each_missing_library_once_in_order():
    assert pc.parse_ldd(LDD_OUTPUT) == ["libxcb-cursor.so.0", "libxcb-icccm.so.4", "libweird.so.3"]
    assert pc.parse_ldd("\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x1)\n") == []


def test_packages_for_maps_libraries_to_debian_and_fedora_names():
    debian, fedora, unknown, bundled = pc.packages_for(
        [
            "libxcb-cursor.so.0",
            "libxcb-icccm.so.4",
            "libxcb-ewmh.so.2",
            "libxcb-randr.so.0",
            "libxcb-shape.so.0",
            "libEGL.so.1",
            "libweird.so.3",
            "libQt6XcbQpa.so.6",
        ]
    )
    assert debian == ["libxcb-cursor0", "libxcb-icccm4", "libxcb-ewmh2", "libxcb-randr0", "libxcb-shape0", "libegl1"]
    # Fedora packs icccm and ewmh into xcb-util-wm, and all of libxcb's extensions into libxcb: no repeats
    assert fedora == ["xcb-util-cursor", "xcb-util-wm", "libxcb", "libglvnd-egl"]
    assert unknown == ["libweird.so.3"] and bundled == ["libQt6XcbQpa.so.6"]


def test_the_message_is_one_line_with_both_install_commands():
    msg = pc.missing_libraries_message(pc.parse_ldd(LDD_OUTPUT))
    assert "\n" not in msg
    assert "libxcb-cursor.so.0, libxcb-icccm.so.4, libweird.so.3" in msg
    assert "sudo apt-get install libxcb-cursor0 libxcb-icccm4 (Debian/Ubuntu)" in msg
    assert "sudo dnf install xcb-util-cursor xcb-util-wm (Fedora)" in msg
    assert "apt-file search libweird.so.3" in msg and "dnf provides '*/libweird.so.3'" in msg
    assert "knowmix --help" in msg
    only_qt = pc.missing_libraries_message(["libQt6Gui.so.6"])
    assert "reinstall KnowMix" in only_qt and "apt-get" not in only_qt


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"DISPLAY": ":0"}, ["xcb"]),
        ({"WAYLAND_DISPLAY": "wayland-0"}, ["wayland"]),
        ({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0"}, ["wayland", "xcb"]),
        ({"QT_QPA_PLATFORM": "xcb", "DISPLAY": ":0"}, ["xcb"]),
        ({"QT_QPA_PLATFORM": "wayland;xcb", "DISPLAY": ":0"}, ["wayland", "xcb"]),
        ({"QT_QPA_PLATFORM": "xcb:dpi=96", "DISPLAY": ":0"}, ["xcb"]),
        ({"QT_QPA_PLATFORM": "offscreen", "DISPLAY": ":0"}, []),
        ({"QT_QPA_PLATFORM": "offscreen"}, []),
        ({"QT_QPA_PLATFORM": "minimal"}, []),
        ({}, None),
        ({"QT_QPA_PLATFORM": "xcb"}, None),
    ],
)
@pytest.mark.skipif(not LINUX, reason="the check applies to Linux only")
def test_which_platform_plugins_are_checked(env, expected):
    assert pc.platforms_to_check(env) == expected


def test_no_display_says_what_to_use_instead():
    if not LINUX:
        pytest.skip("Linux only")
    msg = pc.startup_problem({})
    assert msg and "No display found" in msg and "knowmix --help" in msg and "knowmix demo" in msg
    assert "offscreen" in msg and "\n" not in msg


def test_offscreen_never_runs_the_check(monkeypatch):
    """The GUI tests and --self-check run offscreen: not one file is looked at, not one ldd run."""

    def boom(*_a, **_k):
        raise AssertionError("the check ran")

    monkeypatch.setattr(pc, "pyside_dirs", boom)
    monkeypatch.setattr(pc, "missing_libraries", boom)
    assert pc.startup_problem({"QT_QPA_PLATFORM": "offscreen", "DISPLAY": ":0", "WAYLAND_DISPLAY": "w"}) is None


# ---------------------------------------------------------------------------------- the real plugin


def _qt_lib_dir() -> Path:
    if not LINUX:
        pytest.skip("the xcb plugin exists on Linux only")
    for root in pc.pyside_dirs():
        lib = root / "Qt" / "lib"
        if (lib / "libQt6XcbQpa.so.6").is_file():
            return lib
    pytest.skip("this PySide6 has no libQt6XcbQpa.so.6")


def test_the_plugin_is_found_without_importing_qt():
    _qt_lib_dir()
    code = (
        "import sys\nfrom gui.platform_check import platform_plugins\n"
        "print(platform_plugins('xcb')[0])\nprint(sorted(m for m in sys.modules if m.startswith('PySide6')))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0, proc.stderr
    path, loaded = proc.stdout.strip().splitlines()
    assert path.endswith("Qt/plugins/platforms/libqxcb.so") and Path(path).is_file()
    assert loaded == "[]"  # nothing of PySide6 (so nothing of Qt) was imported to find it


def test_every_system_library_qt_needs_is_in_the_table():
    """Read the DT_NEEDED entries of the plugins and of Qt's libraries they load: each one that does
    not ship with PySide6 must map to packages, or a new PySide6 would get a vaguer message."""
    lib = _qt_lib_dir()
    platforms = lib.parent / "plugins" / "platforms"
    files = [platforms / "libqxcb.so", *platforms.glob("libqwayland*.so")]
    needed: set[str] = set()
    seen: set[str] = set()
    while files:
        f = files.pop()
        if f.name in seen:
            continue
        seen.add(f.name)
        info = pc.elf_dynamic(f)
        assert info is not None, f
        for name in info[0]:
            if (lib / name).is_file():
                files.append(lib / name)  # Qt's own: follow it
            else:
                needed.add(name)
    assert "libxcb-cursor.so.0" in needed and "libxkbcommon-x11.so.0" in needed
    unmapped = sorted(n for n in needed - GLIBC if n not in pc.LIBRARY_PACKAGES and not n.startswith("libicu"))
    assert unmapped == []


def test_the_elf_reader_agrees_with_ldd():
    """Where ``ldd`` is missing, the fallback must find the same missing libraries."""
    lib = _qt_lib_dir()
    if not pc.shutil.which("ldd"):
        pytest.skip("no ldd to compare with")
    plugins = pc.platform_plugins("xcb") + pc.platform_plugins("wayland")
    for plugin in plugins + [lib / "libQt6Gui.so.6"]:
        assert sorted(pc._elf_missing(plugin)) == sorted(pc._ldd_missing(plugin)), plugin


@pytest.fixture
def broken_xcb(tmp_path) -> dict[str, str]:
    """An environment in which Qt's xcb plugin really cannot load: libQt6XcbQpa.so.6 is shadowed
    by a copy that needs a library no system has."""
    lib = _qt_lib_dir()
    data = (lib / "libQt6XcbQpa.so.6").read_bytes()
    old, new = b"\0libxcb-cursor.so.0\0", f"\0{FAKE}\0".encode()
    assert len(old) == len(new) and data.count(old) == 1, "libQt6XcbQpa no longer needs libxcb-cursor.so.0"
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "libQt6XcbQpa.so.6").write_bytes(data.replace(old, new))
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("WAYLAND_DISPLAY", "QT_QPA_PLATFORM", "XDG_SESSION_TYPE", "QT_QPA_PLATFORM_PLUGIN_PATH")
    }
    env.update({"DISPLAY": ":99", "LD_LIBRARY_PATH": str(shadow), "PYTHONPATH": str(REPO)})
    return env


def _no_core_file() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _knowmix() -> list[str]:
    script = Path(sys.executable).parent / "knowmix"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "gui.entry"]


def test_qt_itself_aborts_in_that_environment(broken_xcb, tmp_path):
    """The control: without KnowMix's check, creating the QApplication kills the process."""
    proc = subprocess.run(
        [sys.executable, "-c", "from PySide6.QtWidgets import QApplication; QApplication([])"],
        env=broken_xcb,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_no_core_file,
    )
    assert proc.returncode == -signal.SIGABRT, (proc.returncode, proc.stderr)
    assert "no Qt platform plugin could be initialized" in proc.stderr


@pytest.mark.parametrize("with_ldd", [True, False], ids=["ldd", "no-ldd"])
def test_knowmix_names_the_missing_library_and_exits_2(broken_xcb, tmp_path, with_ldd):
    env = dict(broken_xcb)
    if not with_ldd:
        empty = tmp_path / "bin"
        empty.mkdir()
        env["PATH"] = str(empty)  # no ldd: the ELF reader answers
    proc = subprocess.run(
        _knowmix(), env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, preexec_fn=_no_core_file
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert line.startswith("knowmix: error: the desktop app cannot start: Qt's X11 (xcb) platform plugin needs")
    assert FAKE in line and f"apt-file search {FAKE}" in line
    # on a machine that lacks real xcb libraries too, they are named with their packages
    for name in (
        pc.parse_ldd(subprocess.run(["ldd", str(pc.platform_plugins("xcb")[0])], capture_output=True, text=True).stdout)
        if pc.shutil.which("ldd")
        else []
    ):
        assert name in line and pc.LIBRARY_PACKAGES[name][0] in line
    for bad in ("Aborted", "core dumped", "qt.qpa", "could not load", "platform plugin could be initialized", "Traceback"):
        assert bad not in proc.stderr
    assert proc.stdout == ""


def test_offscreen_starts_the_app_even_where_xcb_is_broken(broken_xcb, tmp_path):
    """QT_QPA_PLATFORM=offscreen (the GUI tests, --self-check) skips the check and opens the app."""
    env = {**broken_xcb, "QT_QPA_PLATFORM": "offscreen"}
    code = (
        "import sys\n"
        "import gui.app as app\n"
        "from gui.qt import QtCore\n"
        "class Window:\n"
        "    def show(self):\n"
        "        QtCore.QTimer.singleShot(0, QtCore.QCoreApplication.quit)\n"
        "app.build_window = Window\n"
        "from gui.entry import main\n"
        "sys.exit(main([]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, preexec_fn=_no_core_file
    )
    assert proc.returncode == 0, proc.stderr
    assert "knowmix: error" not in proc.stderr


def test_the_readme_lists_the_packages_for_every_x11_library_of_the_plugin():
    """README's "Linux desktops" commands install everything libqxcb.so and libQt6XcbQpa need."""
    lib = _qt_lib_dir()
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Linux desktops") : readme.index("## The command line")]
    apt = section[section.index("sudo apt-get install") : section.index("# Fedora")]
    dnf = section[section.index("sudo dnf install") :]
    needed = pc.elf_dynamic(pc.platform_plugins("xcb")[0])[0] + pc.elf_dynamic(lib / "libQt6XcbQpa.so.6")[0]
    x11 = {n for n in needed if n.startswith(("libxcb", "libX11-xcb", "libxkbcommon", "libEGL", "libGL"))}
    assert "libxcb-cursor.so.0" in x11
    for name in sorted(x11):
        deb, fed = pc.LIBRARY_PACKAGES[name]
        assert f" {deb} " in apt.replace("\\\n", " ").replace("\n", " ") + " ", name
        assert f" {fed} " in dnf.replace("\\\n", " ").replace("\n", " ") + " ", name


# ---------------------------------------------------------------------------------- no server there


def _free_display_number() -> int:
    for n in range(4000, 4100):
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and pc.display_reachable("xcb", {"DISPLAY": f":{n}"}) is False:
            return n
    pytest.skip("no free X display number")


@pytest.mark.parametrize(
    "display, expected",
    [
        (":0", ("unix", "/tmp/.X11-unix/X0")),
        (":12.0", ("unix", "/tmp/.X11-unix/X12")),
        ("unix:3", ("unix", "/tmp/.X11-unix/X3")),
        ("localhost:10.0", ("tcp", ("localhost", 6010))),
        ("10.1.2.3:1", ("tcp", ("10.1.2.3", 6001))),
        ("garbage", None),
    ],
)
def test_the_x_server_address_is_read_from_display(display, expected):
    assert pc._x11_address(display) == expected


@pytest.mark.skipif(not LINUX, reason="abstract unix sockets are Linux only")
def test_a_listening_x_server_counts_as_reachable_and_a_missing_one_does_not():
    import socket

    n = _free_display_number()
    assert pc.display_reachable("xcb", {"DISPLAY": f":{n}"}) is False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(f"\0/tmp/.X11-unix/X{n}")  # where Xorg and Xvfb listen on Linux
        server.listen(1)
        assert pc.display_reachable("xcb", {"DISPLAY": f":{n}"}) is True
        assert pc.startup_problem({"DISPLAY": f":{n}", "QT_QPA_PLATFORM": "xcb"}) in (None, pc._library_problem(["xcb"], {}))
    assert pc.display_reachable("wayland", {"WAYLAND_DISPLAY": "wayland-kmtest", "XDG_RUNTIME_DIR": "/nonexistent"}) is False


@pytest.mark.skipif(not LINUX, reason="the check applies to Linux only")
def test_a_display_with_no_server_is_one_line_and_exit_2_not_a_qt_abort(tmp_path):
    """A stale DISPLAY (SSH, containers) made Qt abort with "could not connect to display"."""
    n = _free_display_number()
    env = {k: v for k, v in os.environ.items() if k not in ("WAYLAND_DISPLAY", "QT_QPA_PLATFORM", "XDG_SESSION_TYPE")}
    env.update({"DISPLAY": f":{n}", "PYTHONPATH": str(REPO)})
    proc = subprocess.run(
        _knowmix(), env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, preexec_fn=_no_core_file
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert len(lines) == 1, proc.stderr
    # where Qt's libraries are all present the display is the problem; otherwise the libraries come first
    assert f"No display server answers at DISPLAY=:{n}" in lines[0] or "platform plugin needs" in lines[0]
    for bad in ("Aborted", "core dumped", "qt.qpa", "could not connect", "Traceback"):
        assert bad not in proc.stderr
