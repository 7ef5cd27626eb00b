"""PyInstaller's entry script: the frozen ``knowmix`` binary is ``gui.entry:main``.

``freeze_support`` first, so that a multiprocessing child started by a library (spawn start
method) runs its task instead of a second copy of the app.
"""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from gui.entry import main

    sys.exit(main())
