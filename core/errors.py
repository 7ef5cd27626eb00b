"""Errors a user can act on.

Every failure caused by the user's input (a file, a setting, the machine) is raised as a
``KnowMixError`` subclass whose message says what went wrong, where, and what to do. The CLI
prints the message on one line and exits non-zero; the GUI shows it in a dialog. Anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations


class KnowMixError(Exception):
    """Base class: the message is written for the person at the keyboard."""

    exit_code = 2


class DatasetError(KnowMixError):
    """A dataset file cannot be read, or its rows are not usable."""


class ModelError(KnowMixError):
    """A model file or folder cannot be loaded."""


class ProjectError(KnowMixError):
    """The project file cannot be opened or written."""


class SettingsError(KnowMixError):
    """A setting is out of range or contradicts another."""


class Cancelled(KnowMixError):
    """The user asked a running job to stop; its finished work is saved."""

    exit_code = 130
