"""Audit records arrive while the command runs, not only at its end; two
sessions from two threads."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Dict, List

import pytest

from ws_sandbox import Workspace


def wait_for(signal: Path) -> str:
    """A command that writes early.txt, then waits (at most 30 s) for `signal`."""
    return (f"echo early > early.txt; i=0; while [ ! -e '{signal}' ] && [ $i -lt 600 ]; do sleep 0.05; "
            f"i=$((i+1)); done; [ -e '{signal}' ] && echo late > late.txt")


def records_writes(ws: Workspace) -> bool:
    """Write records need the fanotify recorder (root, or the recorder service)."""
    return ws.run(["true"]).log()[0]["recording"]["writes"] != "none"


def test_on_event_sees_a_write_while_the_command_still_runs(ws: Workspace, tmp_path: Path) -> None:
    if not records_writes(ws):
        pytest.skip("no write recorder for this user")
    signal = tmp_path / "go"
    seen: List[Dict[str, Any]] = []

    def on_event(record: Dict[str, Any]) -> None:
        seen.append(record)
        if record["type"] == "write" and record["path"] == "early.txt":
            signal.touch()  # only now may the command finish

    s = ws.run(["sh", "-c", wait_for(signal)], on_event=on_event)
    # The command waited for the signal, which only the early record could give.
    assert s.exit_code == 0, "the command timed out: the write record did not arrive while it ran"
    paths = [r.get("path") for r in seen if r["type"] == "write"]
    assert paths.index("early.txt") < paths.index("late.txt")
    assert seen[0]["type"] == "session_start" and seen[-1]["type"] == "session_end"
    assert [r["seq"] for r in seen] == [r["seq"] for r in s.log()]


def test_a_started_session_can_be_iterated_while_it_runs(ws: Workspace, tmp_path: Path) -> None:
    if not records_writes(ws):
        pytest.skip("no write recorder for this user")
    signal = tmp_path / "go"
    with ws.start(["sh", "-c", wait_for(signal)], name="iterated") as running:
        types = []
        for record in running:
            types.append(record["type"])
            if record["type"] == "write" and record["path"] == "early.txt":
                assert running.poll() is None  # still running
                signal.touch()
        s = running.wait()
    assert s.exit_code == 0 and s.name == "iterated" and s.id == running.id
    assert types[0] == "session_start" and types[-1] == "session_end"


def test_two_sessions_from_two_threads(ws: Workspace, repo: Path) -> None:
    results: Dict[str, Any] = {}
    events: Dict[str, List[Dict[str, Any]]] = {"a": [], "b": []}
    barrier = threading.Barrier(2)

    def agent(label: str) -> None:
        barrier.wait()
        try:
            results[label] = ws.run(["sh", "-c", f"sleep 0.3; echo {label} > from_{label}.txt"], name=label,
                                    on_event=events[label].append, capture_output=True)
        except BaseException as e:  # reported by the main thread
            results[label] = e

    threads = [threading.Thread(target=agent, args=(label,)) for label in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    a, b = results["a"], results["b"]
    assert not isinstance(a, BaseException), a
    assert not isinstance(b, BaseException), b
    assert a.id != b.id and (a.name, b.name) == ("a", "b")
    for s, label in ((a, "a"), (b, "b")):
        assert s.exit_code == 0
        own = [c.path for c in s.changes() if c.by in ("session", "both")]
        assert own == [f"from_{label}.txt"]
        # Each thread got its own session's records, all of them.
        assert {r["session"] for r in events[label] if r["type"] == "session_start"} == {s.id}
        assert [r["seq"] for r in events[label]] == [r["seq"] for r in s.log()]
    assert (repo / "from_a.txt").read_text() == "a\n" and (repo / "from_b.txt").read_text() == "b\n"
