#!/usr/bin/env python3
"""Run an agent in a sandboxed session, keep what it changed under src/,
roll back everything else.

    python examples/keep_only_src.py [WORKSPACE] [-- COMMAND ARGS...]

Without a command it runs Claude Code headless with the `claude-code`
profile. Each audit record is printed as it happens (to stderr: stdout is
the agent's).
"""

from __future__ import annotations

import sys

from ws_sandbox import ConflictError, Workspace, WsError


def main(argv: list) -> int:
    if "--" in argv:
        at = argv.index("--")
        where, command, profile = argv[:at], argv[at + 1:], "default"
    else:
        where, command, profile = argv, ["claude", "-p", "fix the failing tests",
                                         "--dangerously-skip-permissions"], "claude-code"
    workspace = Workspace(where[0] if where else ".")

    def show(record: dict) -> None:
        if record["type"] in ("write", "denial", "net"):
            what = record.get("path") or record.get("object") or record.get("host")
            print(f"[ws] {record['type']}: {what}", file=sys.stderr)

    try:
        session = workspace.run(command, profile=profile, name="agent", on_event=show)
    except WsError as e:
        print(f"ws: {e}" + (f"\nhint: {e.hint}" if e.hint else ""), file=sys.stderr)
        return 1
    outside = [c.path for c in session.changes() if c.state == "pending" and not c.path.startswith("src/")]
    if outside:
        try:
            session.rollback(outside)
        except ConflictError as e:
            print(f"ws: {e} (edited since the session; left as they are)", file=sys.stderr)
    if session.state == "pending":
        session.approve()  # what is left pending is under src/
    print(f"[ws] session {session.id}: exit {session.exit_code}, rolled back {len(outside)} path(s) outside src/",
          file=sys.stderr)
    return session.exit_code or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
