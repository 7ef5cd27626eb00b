"""Where KnowMix's own files go: the OS's folders, one folder with KNOWMIX_HOME, and an old ~/.knowmix kept."""

from __future__ import annotations

import sys

import pytest

from core import paths


def test_knowmix_home_holds_data_settings_and_logs(tmp_path, monkeypatch):
    monkeypatch.setenv("KNOWMIX_HOME", str(tmp_path / "kh"))
    assert paths.app_home() == paths.settings_dir() == tmp_path / "kh"
    assert paths.logs_dir() == tmp_path / "kh" / "logs"


def test_without_knowmix_home_each_os_folder_is_used(tmp_path, monkeypatch):
    """The folders a user of each OS expects, written out (not asked of platformdirs again, which
    would pass whatever the code asked it for): data, settings and logs each in their own place."""
    monkeypatch.delenv("KNOWMIX_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    if sys.platform.startswith("linux"):
        expected = (tmp_path / "data" / "KnowMix", tmp_path / "config" / "KnowMix", tmp_path / "state" / "KnowMix" / "log")
    elif sys.platform == "darwin":
        support = tmp_path / "Library" / "Application Support" / "KnowMix"
        expected = (support, support, tmp_path / "Library" / "Logs" / "KnowMix")
    else:
        pytest.skip("Windows asks the shell for its folders, not HOME, so they cannot be put in tmp_path")
    assert (paths.app_home(), paths.settings_dir(), paths.logs_dir()) == expected


def test_a_knowmix_folder_from_an_earlier_version_keeps_being_used(tmp_path, monkeypatch):
    monkeypatch.delenv("KNOWMIX_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".knowmix").mkdir()
    assert paths.app_home() == paths.settings_dir() == tmp_path / ".knowmix"
    assert paths.logs_dir() == tmp_path / ".knowmix" / "logs"
