"""Real sessions in real git workspaces: a fresh HOME (so the snapshot store
is the test's own), a hermetic git, and the `ws` the package bundles (or
``$WS_BINARY`` while developing)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import ws_sandbox

REPO = Path(__file__).resolve().parents[2]


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, stdout=subprocess.PIPE, text=True).stdout


@pytest.fixture(autouse=True)
def hermetic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("WS_STORE_DIR", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_NAME", "Test")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "test@example.com")
    return home


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A committed git repository: src/app.py, notes.txt, docs/guide.md."""
    r = tmp_path / "repo"
    (r / "src").mkdir(parents=True)
    (r / "docs").mkdir()
    (r / "src" / "app.py").write_text("print('hello')\n")
    (r / "notes.txt").write_text("one\ntwo\nthree\n")
    (r / "docs" / "guide.md").write_text("# Guide\n")
    git(r, "init", "-q", "-b", "main")
    git(r, "add", "-A")
    git(r, "commit", "-q", "-m", "init")
    return r


@pytest.fixture
def ws(repo: Path) -> ws_sandbox.Workspace:
    return ws_sandbox.Workspace(repo)


@pytest.fixture(scope="session", autouse=True)
def binary() -> str:
    """Fails every test at once, with the fix, if there is no ws to drive."""
    return ws_sandbox.ws_binary()
