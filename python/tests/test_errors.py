"""One exception for each error kind, each with the CLI's message."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

import ws_sandbox
from ws_sandbox import Workspace

REPO = Path(__file__).resolve().parents[2]


def test_usage_a_path_the_session_did_not_change(ws: Workspace) -> None:
    s = ws.run(["sh", "-c", "echo x > made.txt"])
    with pytest.raises(ws_sandbox.UsageError) as e:
        s.approve(["notes.txt"])
    assert "notes.txt" in e.value.message and e.value.exit_code == 2 and e.value.hint
    assert [c.state for c in s.changes()] == ["pending"]  # nothing was approved


def test_unknown_session(ws: Workspace) -> None:
    with pytest.raises(ws_sandbox.UnknownSessionError) as e:
        ws.session("no-such-session")
    assert str(e.value) == "no session matches `no-such-session` in this workspace"
    assert e.value.hint == "`ws session list` shows the sessions of this workspace"


def test_conflict_then_force(ws: Workspace, repo: Path) -> None:
    s = ws.run(["sh", "-c", "echo agent >> notes.txt"])
    (repo / "notes.txt").write_text("edited by me after the session\n")
    with pytest.raises(ws_sandbox.ConflictError) as e:
        s.rollback()
    assert str(e.value) == "1 path was not rolled back" and e.value.exit_code == 3
    assert (repo / "notes.txt").read_text() == "edited by me after the session\n"
    s.rollback(force=True)
    assert (repo / "notes.txt").read_text() == "one\ntwo\nthree\n" and s.state == "closed"


def test_bad_profile(ws: Workspace, repo: Path) -> None:
    with pytest.raises(ws_sandbox.BadProfileError) as e:
        ws.run(["sh", "-c", "echo x > made.txt"], profile="no-such-profile")
    assert str(e.value) == "profile `no-such-profile` not found"
    assert not (repo / "made.txt").exists() and ws.sessions() == []


def test_command_not_run(ws: Workspace) -> None:
    with pytest.raises(ws_sandbox.CommandNotRunError) as e:
        ws.run(["no-such-command-ws-sdk"])
    assert str(e.value) == "command not found: no-such-command-ws-sdk" and e.value.exit_code == 127
    assert ws.sessions() == []  # refused before any snapshot


def test_not_a_workspace() -> None:
    with pytest.raises(ws_sandbox.NotAWorkspaceError) as e:
        Workspace("/").run(["true"])
    assert str(e.value) == "refusing to use / as a workspace"
    with pytest.raises(ws_sandbox.NotAWorkspaceError):
        Workspace("/no/such/directory")


def test_failure_names_the_damaged_store_file(ws: Workspace, hermetic: Path) -> None:
    s = ws.run(["sh", "-c", "echo x > made.txt"])
    (changes,) = hermetic.glob(f".local/share/ws/stores/*/sessions/{s.id}/changes")
    changes.unlink()
    with pytest.raises(ws_sandbox.WsError) as e:
        s.changes()
    assert type(e.value) is ws_sandbox.WsError and e.value.kind == "failure" and e.value.exit_code == 1
    assert str(changes) in str(e.value)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a small tmpfs")
def test_disk_full(tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(small)], check=True)
    try:
        (small / "big.bin").write_bytes(os.urandom(1_500_000))  # the snapshot's copy cannot fit
        with pytest.raises(ws_sandbox.DiskFullError) as e:
            Workspace(small).run(["sh", "-c", "echo x > made.txt"])
        assert "No space left on device" in str(e.value) and "disk" in (e.value.hint or "")
        assert not (small / "made.txt").exists()  # the command never ran
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the seccomp filter is x86_64 only")
def test_sandbox_unavailable(ws: Workspace, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # ws under a filter that refuses new namespaces (as a container's
    # seccomp profile does), and a profile that requires them.
    wrapper = tmp_path / "ws-no-namespaces"
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} {REPO}/tests/e2e/no_namespaces_seccomp.py "
                       f"{ws_sandbox.ws_binary()} \"$@\"\n")
    wrapper.chmod(0o755)
    profile = tmp_path / "strict.toml"
    profile.write_text('extends = "default"\n[enforce]\nrequire = ["namespaces"]\n')
    monkeypatch.setenv("WS_BINARY", str(wrapper))
    # Positive control: the same ws runs a session without the requirement.
    assert ws.run(["true"], allow_degraded=True).exit_code == 0
    with pytest.raises(ws_sandbox.SandboxUnavailableError) as e:
        ws.run(["sh", "-c", "echo x > made.txt"], profile=str(profile))
    assert str(e.value) == f"profile `{profile}` requires namespaces, which this machine cannot enforce"
    assert "--allow-degraded" in (e.value.hint or "")
    assert not (repo / "made.txt").exists()


def test_every_kind_has_its_class() -> None:
    kinds = {"usage", "unknown_session", "conflict", "sandbox_unavailable", "bad_profile", "not_a_workspace",
             "command_not_run", "disk_full", "failure"}
    assert {c.kind for c in ws_sandbox._errors.KINDS.values()} == kinds
    assert all(issubclass(c, ws_sandbox.WsError) for c in ws_sandbox._errors.KINDS.values())
