"""Exceptions: one class per error kind `ws` reports."""

from __future__ import annotations

from typing import Dict, Optional, Type


class WsError(Exception):
    """An error `ws` reported, with the message (and hint) the CLI prints.

    ``kind`` is the CLI's stable name for it (``failure`` for this base
    class), ``hint`` what to do about it, ``exit_code`` the exit status of
    the `ws` process that reported it.
    """

    kind = "failure"

    def __init__(self, message: str, hint: Optional[str] = None, exit_code: Optional[int] = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, hint={self.hint!r}, exit_code={self.exit_code!r})"


class UsageError(WsError):
    """Bad input: a path the session did not change, a path outside the workspace, bad arguments."""

    kind = "usage"


class UnknownSessionError(WsError):
    """No session of the workspace has that id or name (or none is pending)."""

    kind = "unknown_session"


class ConflictError(WsError):
    """A rollback left paths alone that changed after the session; ``force=True`` overwrites them."""

    kind = "conflict"


class SandboxUnavailableError(WsError):
    """This machine cannot give the sandbox the profile requires (``allow_degraded=True`` runs anyway)."""

    kind = "sandbox_unavailable"


class BadProfileError(WsError):
    """The profile cannot be found, read or parsed."""

    kind = "bad_profile"


class NotAWorkspaceError(WsError):
    """No workspace there: no such directory, ``/``, not writable, or nowhere to keep snapshots."""

    kind = "not_a_workspace"


class CommandNotRunError(WsError):
    """The command was not found, or is not executable (nothing was snapshotted)."""

    kind = "command_not_run"


class DiskFullError(WsError):
    """The disk (of the workspace or of the snapshot store) is full."""

    kind = "disk_full"


KINDS: Dict[str, Type[WsError]] = {
    c.kind: c
    for c in (
        WsError,
        UsageError,
        UnknownSessionError,
        ConflictError,
        SandboxUnavailableError,
        BadProfileError,
        NotAWorkspaceError,
        CommandNotRunError,
        DiskFullError,
    )
}

# The CLI's exit codes (README, "Exit codes") when no error object came.
_BY_EXIT = {2: UsageError, 3: ConflictError, 125: SandboxUnavailableError, 126: CommandNotRunError,
            127: CommandNotRunError}


def from_object(obj: dict, exit_code: Optional[int]) -> WsError:
    """The exception for an ``{"error": {"kind", "message", "hint"}}`` object's inside."""
    cls = KINDS.get(str(obj.get("kind")), WsError)
    return cls(str(obj.get("message", "")), obj.get("hint"), exit_code)


def from_exit(exit_code: int, stderr: str) -> WsError:
    """The exception for a failure that came without an error object (e.g. argument parsing)."""
    cls = _BY_EXIT.get(exit_code, WsError)
    text = stderr.strip() or f"ws exited with status {exit_code}"
    if text.startswith("error: "):
        text = text[len("error: "):]
    return cls(text, None, exit_code)
