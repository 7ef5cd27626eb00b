"""The nine steps of the main window, in order."""
