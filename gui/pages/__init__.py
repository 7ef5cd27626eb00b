"""The eight steps of the main window, in order."""
