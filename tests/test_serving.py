"""`statecast serve`'s process settings: what spawned API processes read, and their metrics folder."""

import os

import pytest

from app.config import Settings
from app.serving import MULTIPROC_ENV, multiprocess_metrics, settings_env


def test_settings_travel_to_another_process_as_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(api_processes=3, header_timeout_s=2.5, port=8123)
    for name, value in settings_env(settings).items():
        monkeypatch.setenv(name, value)
    assert Settings() == settings


def test_several_processes_get_a_fresh_metrics_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    with multiprocess_metrics(1):
        assert MULTIPROC_ENV not in os.environ  # one process counts in memory, as before
    with multiprocess_metrics(2):
        folder = os.environ[MULTIPROC_ENV]
        assert os.listdir(folder) == []
    assert MULTIPROC_ENV not in os.environ and not os.path.exists(folder)


def test_a_metrics_folder_the_operator_chose_is_kept(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: os.PathLike[str]) -> None:
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    with multiprocess_metrics(4):
        assert os.environ[MULTIPROC_ENV] == str(tmp_path)
    assert os.path.isdir(tmp_path)
