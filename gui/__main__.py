"""``python -m gui``: the desktop app, started the way ``knowmix`` starts it (checks first, then Qt)."""

import sys

from .entry import main

sys.exit(main([]))
