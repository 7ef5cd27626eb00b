"""Where KnowMix's own files go: the OS's folders, one folder with KNOWMIX_HOME, and an old ~/.knowmix kept."""

from __future__ import annotations

from pathlib import Path

import platformdirs

from core import paths


def test_knowmix_home_holds_data_settings_and_logs(tmp_path, monkeypatch):
    monkeypatch.setenv("KNOWMIX_HOME", str(tmp_path / "kh"))
    assert paths.app_home() == paths.settings_dir() == tmp_path / "kh"
    assert paths.logs_dir() == tmp_path / "kh" / "logs"


def test_without_knowmix_home_each_os_folder_is_used(tmp_path, monkeypatch):
    monkeypatch.delenv("KNOWMIX_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert paths.app_home() == Path(platformdirs.user_data_dir("KnowMix", appauthor=False))
    assert paths.settings_dir() == Path(platformdirs.user_config_dir("KnowMix", appauthor=False))
    assert paths.logs_dir() == Path(platformdirs.user_log_dir("KnowMix", appauthor=False))
    assert str(tmp_path) in str(paths.app_home()) and paths.app_home() != paths.settings_dir()


def test_a_knowmix_folder_from_an_earlier_version_keeps_being_used(tmp_path, monkeypatch):
    monkeypatch.delenv("KNOWMIX_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".knowmix").mkdir()
    assert paths.app_home() == paths.settings_dir() == tmp_path / ".knowmix"
    assert paths.logs_dir() == tmp_path / ".knowmix" / "logs"
