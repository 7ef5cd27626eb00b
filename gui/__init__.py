"""KnowMix desktop app (PySide6). It uses ``core`` and is never imported by it."""
