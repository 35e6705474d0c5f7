"""Every method of Workspace and Session against real sessions."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import ws_sandbox
from ws_sandbox import Workspace

EDIT = "echo changed >> notes.txt; echo new > src/new.py; rm docs/guide.md; echo out; echo err >&2"


def test_run_returns_the_session_with_its_changes(ws: Workspace, repo: Path) -> None:
    s = ws.run(["sh", "-c", EDIT], name="edit", capture_output=True)
    assert len(s.id) == 8 and s.name == "edit"
    assert s.state == "pending" and s.exit_code == 0
    assert s.stdout == b"out\n" and s.stderr == b"err\n"
    changes = {c.path: c for c in s.changes()}
    assert set(changes) == {"notes.txt", "src/new.py", "docs/guide.md"}
    assert changes["notes.txt"].status == "modified"
    assert (changes["notes.txt"].insertions, changes["notes.txt"].deletions) == (1, 0)
    assert changes["src/new.py"].status == "added"
    assert changes["docs/guide.md"].status == "deleted"
    assert all(c.state == "pending" and c.by == "session" for c in changes.values())


def test_a_file_replaced_by_a_symlink_is_type_changed(ws: Workspace) -> None:
    s = ws.run(["sh", "-c", "rm notes.txt && ln -s docs/guide.md notes.txt"])
    (c,) = s.changes()
    assert (c.path, c.status, c.state) == ("notes.txt", "type_changed", "pending")


def test_exit_code_is_the_commands(ws: Workspace) -> None:
    assert ws.run(["sh", "-c", "exit 3"]).exit_code == 3


def test_diff_of_all_and_of_some_paths(ws: Workspace) -> None:
    s = ws.run(["sh", "-c", EDIT], capture_output=True)
    whole = s.diff()
    assert "+changed" in whole and "+new" in whole and "-# Guide" in whole
    only = s.diff(["notes.txt"])
    assert "+changed" in only and "src/new.py" not in only


def test_approve_some_then_rollback_the_rest(ws: Workspace, repo: Path) -> None:
    s = ws.run(["sh", "-c", EDIT], capture_output=True)
    s.approve(["src/new.py"])
    states = {c.path: c.state for c in s.changes()}
    assert states == {"src/new.py": "approved", "notes.txt": "pending", "docs/guide.md": "pending"}
    assert s.state == "pending"
    s.rollback()
    assert s.state == "closed"
    assert (repo / "notes.txt").read_text() == "one\ntwo\nthree\n"
    assert (repo / "docs" / "guide.md").read_text() == "# Guide\n"
    assert (repo / "src" / "new.py").read_text() == "new\n"


def test_approve_everything_closes_the_session(ws: Workspace, repo: Path) -> None:
    s = ws.run(["sh", "-c", EDIT], capture_output=True)
    s.approve()
    assert s.state == "closed"
    assert {c.state for c in s.changes()} == {"approved"}
    assert (repo / "notes.txt").read_text().endswith("changed\n")


def test_log_is_the_audit_log(ws: Workspace) -> None:
    s = ws.run(["sh", "-c", "echo x > made.txt"])
    records = s.log()
    assert records[0]["type"] == "session_start" and records[0]["session"] == s.id
    assert records[-1]["type"] == "session_end" and records[-1]["exit_code"] == 0
    assert [r["seq"] for r in records] == list(range(len(records)))
    if records[0]["recording"]["writes"] == "fanotify":
        assert any(r["type"] == "write" and r["path"] == "made.txt" for r in records)


def test_sessions_newest_first_and_found_by_id_prefix_or_name(ws: Workspace) -> None:
    first = ws.run(["true"], name="first")
    second = ws.run(["true"], name="second")
    assert [s.id for s in ws.sessions()] == [second.id, first.id]
    assert ws.session("first").id == first.id
    assert ws.session(second.id[:6]).name == "second"
    found = ws.session(first.id)
    assert (found.state, found.exit_code, found.command) == ("closed", 0, ["true"])


def test_env_reaches_the_command_through_the_profiles_allow_list(ws: Workspace, tmp_path: Path) -> None:
    profile = tmp_path / "allow.toml"
    profile.write_text('extends = "default"\n[environment]\nallow = ["SDK_TEST_*"]\n')
    script = 'printf "%s|%s" "$SDK_TEST_VAR" "$OTHER_VAR"'
    env = {"SDK_TEST_VAR": "passed", "OTHER_VAR": "kept out"}
    s = ws.run(["sh", "-c", script], profile=str(profile), env=env, capture_output=True)
    assert s.stdout == b"passed|"
    # Positive control: the default profile keeps SDK_TEST_VAR out too.
    assert ws.run(["sh", "-c", script], env=env, capture_output=True).stdout == b"|"


def test_start_terminate_ends_the_command(ws: Workspace, repo: Path) -> None:
    running = ws.start(["sh", "-c", "echo > started; exec sleep 60"])
    assert running.id is not None  # the snapshot is taken
    deadline = time.monotonic() + 30
    # ws loses a SIGTERM that comes before the command has started: wait for it.
    while not (repo / "started").exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    running.terminate()
    s = running.wait(timeout=30)
    assert s.exit_code != 0 or s.exit_signal is not None


def test_nothing_of_ws_reaches_the_callers_stdout(ws: Workspace, capfd: pytest.CaptureFixture[str]) -> None:
    s = ws.run(["sh", "-c", "echo x > f"], capture_output=True)
    s.changes()
    s.diff()
    s.rollback()
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    # With the default (inherit), the command's own output is the caller's; ws adds nothing.
    ws.run(["echo", "from the command"])
    out, err = capfd.readouterr()
    assert out == "from the command\n" and err == ""


def test_the_example_rolls_back_everything_outside_src(repo: Path) -> None:
    example = Path(__file__).resolve().parents[1] / "examples" / "keep_only_src.py"
    script = "echo a > src/agent.py; echo b > notes.txt; rm docs/guide.md"
    proc = subprocess.run([sys.executable, str(example), str(repo), "--", "sh", "-c", script],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ)
    assert proc.returncode == 0, proc.stderr
    assert (repo / "src" / "agent.py").read_text() == "a\n"
    assert (repo / "notes.txt").read_text() == "one\ntwo\nthree\n"
    assert (repo / "docs" / "guide.md").exists()
    s = Workspace(repo).sessions()[0]
    assert s.state == "closed"
