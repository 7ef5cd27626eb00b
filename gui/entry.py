"""The ``knowmix`` command: no arguments open the desktop app, ``--self-check`` proves the app works
here (offscreen), anything else goes to the CLI.

It lives in ``gui`` because ``core`` may never import Qt; this module imports neither Qt nor the
CLI until it knows which one is wanted, so ``knowmix probe`` starts as fast as before.
"""

from __future__ import annotations

import sys
from typing import Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:2] == ["-m", "core.train.worker"]:
        # A packaged (PyInstaller) app has no Python interpreter: sys.executable is this binary, so
        # core.train.runner's ``[sys.executable, "-m", "core.train.worker", ...]`` arrives here.
        from core.train.worker import main as worker_main

        return worker_main(args[2:])
    if args == ["--self-check"]:
        from .selfcheck import run

        return run()
    if args:
        from core.cli import main as cli_main

        return cli_main(args)
    try:
        from .app import main as app_main
    except ImportError as exc:
        print(f"knowmix: error: the desktop app cannot start ({exc}). Reinstall KnowMix, or use the command line: "
              "knowmix --help", file=sys.stderr)
        return 2
    return app_main()


if __name__ == "__main__":
    sys.exit(main())
