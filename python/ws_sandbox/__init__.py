"""Run AI coding agents sandboxed on a real workspace, then review what they changed.

    from ws_sandbox import Workspace

    ws = Workspace("path/to/project")
    session = ws.run(["claude", "-p", "fix the tests"], profile="claude-code",
                     on_event=lambda record: print(record["type"], record.get("path")))
    for change in session.changes():
        print(change.status, change.path)
    session.approve(["src/"])
    session.rollback()

The package drives the `ws` binary bundled in it (``$WS_BINARY`` overrides
it): each call is one `ws` command, so the sandbox never runs inside the
calling interpreter. Errors raise :class:`WsError` subclasses carrying the
CLI's message and hint.
"""

from ._binary import ws_binary
from ._core import Change, RunningSession, Session, Workspace
from ._errors import (
    BadProfileError,
    CommandNotRunError,
    ConflictError,
    DiskFullError,
    NotAWorkspaceError,
    SandboxUnavailableError,
    UnknownSessionError,
    UsageError,
    WsError,
)

__all__ = [
    "BadProfileError",
    "Change",
    "CommandNotRunError",
    "ConflictError",
    "DiskFullError",
    "NotAWorkspaceError",
    "RunningSession",
    "SandboxUnavailableError",
    "Session",
    "UnknownSessionError",
    "UsageError",
    "Workspace",
    "WsError",
    "ws_binary",
]
__version__ = "0.1.0"
