"""The ``knowmix`` command: no arguments open the desktop app, ``--self-check`` proves the app works
here (offscreen), anything else goes to the CLI.

It lives in ``gui`` because ``core`` may never import Qt; this module imports neither Qt nor the
CLI until it knows which one is wanted, so ``knowmix probe`` starts as fast as before.
"""

from __future__ import annotations

import importlib
import sys
from typing import Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) >= 2 and args[0] == "-m":
        # A packaged (PyInstaller) app has no Python interpreter: sys.executable is this binary, so
        # core.processes.child_command's ``[sys.executable, "-m", MODULE, ...]`` arrives here.
        from core.processes import CHILD_MODULES

        if args[1] in CHILD_MODULES:
            module = importlib.import_module(args[1])
            return int(module.main(args[2:]) or 0)
    if args == ["--self-check"]:
        from .selfcheck import run

        return run()
    if args:
        from core.cli import main as cli_main

        return cli_main(args)
    # Before Qt is imported: a missing system library makes Qt abort the process (a core dump)
    # instead of raising, so this is the last moment to say which one, in words.
    from .platform_check import startup_problem

    problem = startup_problem()
    if problem:
        print(f"knowmix: error: {problem}", file=sys.stderr)
        return 2
    try:
        from .app import main as app_main
    except ImportError as exc:
        print(
            f"knowmix: error: the desktop app cannot start ({exc}). Reinstall KnowMix, or use the command line: knowmix --help",
            file=sys.stderr,
        )
        return 2
    return app_main()


if __name__ == "__main__":
    sys.exit(main())
