"""Workspaces and sessions, driving the `ws` binary.

Every call starts one `ws` process (as the CLI runs), so nothing of the
sandbox runs inside this interpreter: a session's crash, its seccomp filter
or its signals never reach the host program. `ws` is told to speak JSON
(``WS_MESSAGES=json``, ``--events-fd``); its messages go to the
``ws_sandbox`` logger, never to the caller's stdout.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import subprocess
import threading
from dataclasses import dataclass, field
from typing import IO, Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Union

from . import _errors
from ._binary import ws_binary
from ._errors import NotAWorkspaceError, WsError

log = logging.getLogger("ws_sandbox")

PathLike = Union[str, "os.PathLike[str]"]
#: Where a session's stdin/stdout/stderr go, as for :mod:`subprocess`:
#: ``None`` (inherit), ``subprocess.PIPE``, ``subprocess.DEVNULL``, a file
#: object or a descriptor.
Stream = Union[None, int, IO[Any]]

_LEVELS = {"note": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def _ws_env(env: Optional[Mapping[str, str]]) -> Dict[str, str]:
    e = dict(os.environ)
    if env:
        e.update(env)
    e["WS_MESSAGES"] = "json"
    e["NO_COLOR"] = "1"
    return e


def _message(obj: dict) -> None:
    log.log(_LEVELS.get(str(obj.get("level")), logging.INFO), "%s", obj.get("text", ""))


@dataclass(frozen=True)
class Change:
    """One path a session changed (an entry of ``ws diff --json``, renames split)."""

    path: str
    #: ``added``, ``modified``, ``deleted`` or ``type_changed``.
    status: str
    #: ``pending``, ``approved`` or ``rolled_back``.
    state: str
    #: ``session``, ``outside`` (another process during the session) or ``both`` (a conflict).
    by: str
    #: Lines added and removed; ``None`` for binary files.
    insertions: Optional[int]
    deletions: Optional[int]
    #: The whole object ``ws diff --json`` gave (``before``, ``after``, ``hunks``…).
    raw: Dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def _from_json(cls, c: Dict[str, Any]) -> "Change":
        return cls(c["path"], c["status"], c["state"], c.get("by", "session"), c.get("insertions"),
                   c.get("deletions"), c)


class Session:
    """A session of a workspace: what ``ws session show --json`` says about it.

    The attributes are as of the last read (the end of :meth:`Workspace.run`,
    :meth:`Workspace.session`, or :meth:`refresh`); :meth:`approve` and
    :meth:`rollback` read them again.
    """

    def __init__(self, workspace: "Workspace", info: Dict[str, Any]) -> None:
        self.workspace = workspace
        self._lock = threading.Lock()
        #: The command's captured output, when it was run with ``capture_output=True`` or ``PIPE``.
        self.stdout: Optional[bytes] = None
        self.stderr: Optional[bytes] = None
        self._set(info)

    def _set(self, info: Dict[str, Any]) -> None:
        with self._lock:
            self.info: Dict[str, Any] = info
            self.id: str = info["id"]
            self.name: Optional[str] = info.get("name")
            #: ``running``, ``pending``, ``closed``, ``interrupted`` or ``rollback-interrupted``.
            self.state: str = info["state"]
            #: The command's exit code (``None`` if it died of a signal: see ``exit_signal``).
            self.exit_code: Optional[int] = info.get("exit_code")
            self.exit_signal: Optional[int] = info.get("exit_signal")
            self.command: List[str] = list(info.get("command") or [])

    def __repr__(self) -> str:
        return f"<Session {self.id} name={self.name!r} state={self.state} exit_code={self.exit_code}>"

    def refresh(self) -> "Session":
        """Reads the session's state again (``ws session show``)."""
        self._set(self.workspace._show(self.id))
        return self

    def changes(self) -> List[Change]:
        """The paths the session changed, in path order (``ws diff --json``, a rename as its two halves)."""
        out = self.workspace._ws(["diff", self.id, "--json", "--no-renames"])
        return [Change._from_json(c) for c in json.loads(out)["changes"]]

    def diff(self, paths: Optional[Sequence[PathLike]] = None) -> str:
        """The git-style diff of the session's changes (``ws diff``), of ``paths`` only if given."""
        return self.workspace._ws(["diff", self.id, "--", *_paths(paths)])

    def approve(self, paths: Optional[Sequence[PathLike]] = None) -> None:
        """Keeps the session's version of ``paths`` (default: every pending change)."""
        self.workspace._ws(["approve", "--", self.id, *_paths(paths)])
        self.refresh()

    def rollback(self, paths: Optional[Sequence[PathLike]] = None, force: bool = False) -> None:
        """Restores the snapshot's version of ``paths`` (default: every pending change).

        A path changed after the session ended is left alone and raises
        :class:`~ws_sandbox.ConflictError` once the rest is done; ``force=True``
        overwrites it.
        """
        self.workspace._ws(["rollback", *(["--force"] if force else []), "--", self.id, *_paths(paths)])
        self.refresh()

    def log(self) -> List[Dict[str, Any]]:
        """The session's audit log: one dict per record, as ``ws log --json`` prints them."""
        out = self.workspace._ws(["log", self.id, "--json"])
        return [json.loads(line) for line in out.splitlines() if line.strip()]


def _paths(paths: Optional[Sequence[PathLike]]) -> List[str]:
    if paths is None:
        return []
    if isinstance(paths, (str, bytes, os.PathLike)):
        raise TypeError("paths is a list of paths, not one path")
    return [os.fspath(p) for p in paths]


_END = object()


class RunningSession:
    """A session started by :meth:`Workspace.start`.

    Iterate it for the audit records as they are written (dicts, as
    ``ws log --json`` prints them; the iteration ends with the session),
    then :meth:`wait` for the :class:`Session`. Use it as a context manager
    to wait at the end of the block.
    """

    def __init__(self, workspace: "Workspace", proc: subprocess.Popen, events: IO[bytes],
                 threaded: bool = True) -> None:
        self.workspace = workspace
        self._proc = proc
        self._events = events
        self._queue: "queue.Queue[Any]" = queue.Queue()
        self._result: Optional[Dict[str, Any]] = None
        self._done = threading.Event()
        self._id_known = threading.Event()
        self._id: Optional[str] = None
        self._session: Optional[Session] = None
        self._error: Optional[WsError] = None
        self._out: Dict[str, bytes] = {}
        # Threaded (start()): a thread reads the records into a queue, so the
        # caller may do anything meanwhile. Not (run(), which blocks anyway):
        # the caller's thread reads them itself, with no hand-off between
        # threads on the way (what a loaded machine makes slow).
        self._threaded = threaded
        self._readers: List[threading.Thread] = []
        if threaded:
            self._readers.append(threading.Thread(target=self._read_events, daemon=True))
        for name in ("stdout", "stderr"):
            pipe = getattr(proc, name)
            if pipe is not None:
                self._readers.append(threading.Thread(target=self._read_output, args=(name, pipe), daemon=True))
        for t in self._readers:
            t.start()

    def _records(self) -> Iterator[Dict[str, Any]]:
        """The events descriptor's records, in order; messages are logged and
        the last line (the session, or an error) kept, on the way."""
        try:
            for raw in self._events:
                try:
                    obj = json.loads(raw)
                except ValueError:
                    log.warning("ws sent a line that is not JSON: %r", raw[:200])
                    continue
                if "seq" in obj:
                    if obj.get("type") == "session_start" and self._id is None:
                        self._id = obj.get("session")
                        self._id_known.set()
                    yield obj
                elif "message" in obj:
                    _message(obj["message"])
                elif "session" in obj or "error" in obj:
                    self._result = obj  # the last one counts
        finally:
            self._events.close()
            self._id_known.set()
            self._done.set()

    def _read_events(self) -> None:
        try:
            for record in self._records():
                self._queue.put(record)
        finally:
            self._queue.put(_END)

    def _read_output(self, name: str, pipe: IO[bytes]) -> None:
        with pipe:
            self._out[name] = pipe.read()

    @property
    def id(self) -> Optional[str]:
        """The session's id, once its snapshot is taken (waits for it; ``None`` if it never started)."""
        self._id_known.wait()
        return self._id

    @property
    def pid(self) -> int:
        """The pid of the `ws` process supervising the session."""
        return self._proc.pid

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        return self.events()

    def events(self, timeout: Optional[float] = None) -> Iterator[Dict[str, Any]]:
        """Yields each audit record as it is written, until the session ends.

        ``timeout``: the most seconds to wait for the next record
        (``queue.Empty`` is raised then). Records already consumed by another
        iteration are not seen again.
        """
        if not self._threaded:
            if not self._done.is_set():
                yield from self._records()
            return
        while True:
            item = self._queue.get(timeout=timeout)
            if item is _END:
                self._queue.put(_END)  # for any other iterator, and wait()
                return
            yield item

    def terminate(self) -> None:
        """Asks the session to end: SIGTERM to `ws`, which passes it to the command and records the end."""
        if self._proc.poll() is None:
            self._proc.terminate()

    def kill(self) -> None:
        """SIGKILL to `ws`; the session is left interrupted (the next ``ws`` command finishes it)."""
        if self._proc.poll() is None:
            self._proc.kill()

    def poll(self) -> Optional[int]:
        """The `ws` process's exit status if it has ended, else ``None``."""
        return self._proc.poll()

    def wait(self, timeout: Optional[float] = None) -> Session:
        """Waits for the session to end and returns it (its ``exit_code`` is the command's).

        Raises the :class:`~ws_sandbox.WsError` subclass for what `ws`
        reported if the session could not run (the command was never
        started), or :class:`subprocess.TimeoutExpired` after ``timeout``.
        """
        if not self._threaded:
            for _ in self.events():  # read to the end: the records stay in the session's log
                pass
        self._proc.wait(timeout)
        for t in self._readers:
            t.join()
        if self._threaded:
            for _ in self.events():
                pass
        if self._session is not None:
            return self._session
        if self._error is not None:
            raise self._error
        code = self._proc.returncode
        result = self._result or {}
        if "session" in result:
            s = Session(self.workspace, result["session"])
            s.stdout, s.stderr = self._out.get("stdout"), self._out.get("stderr")
            self._session = s
            return s
        if "error" in result:
            self._error = _errors.from_object(result["error"], code)
        else:
            self._error = _errors.from_exit(code, self._out.get("stderr", b"").decode(errors="replace"))
        raise self._error

    def __enter__(self) -> "RunningSession":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.terminate()
            try:
                self.wait()
            except WsError:
                pass
        else:
            self.wait()


class Workspace:
    """A workspace: the git top-level around ``path``, else ``path`` (as the CLI finds it).

    Thread-safe: every call starts its own `ws` process, and sessions of one
    workspace take their snapshots one at a time (the workspace's lock).
    """

    def __init__(self, path: PathLike = ".") -> None:
        self.path = os.path.abspath(os.path.expanduser(os.fspath(path)))
        if not os.path.isdir(self.path):
            raise NotAWorkspaceError(f"{self.path}: no such directory", "give the path of your project")

    def __repr__(self) -> str:
        return f"Workspace({self.path!r})"

    def _ws(self, args: Sequence[str]) -> str:
        """Runs `ws ARGS` in the workspace; returns its stdout, or raises what it reported."""
        proc = subprocess.run([ws_binary(), *args], cwd=self.path, env=_ws_env(None), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        error = None
        other = []
        for line in proc.stderr.decode(errors="replace").splitlines():
            try:
                obj = json.loads(line) if line.startswith("{") else None
            except ValueError:
                obj = None
            if isinstance(obj, dict) and "message" in obj:
                _message(obj["message"])
            elif isinstance(obj, dict) and "error" in obj:
                error = obj["error"]
            else:
                other.append(line)
        if error is not None:
            raise _errors.from_object(error, proc.returncode)
        if proc.returncode != 0:
            raise _errors.from_exit(proc.returncode, "\n".join(other))
        return proc.stdout.decode(errors="surrogateescape")

    def _show(self, id_or_name: str) -> Dict[str, Any]:
        return json.loads(self._ws(["session", "show", id_or_name, "--json"]))

    def start(
        self,
        command: Sequence[PathLike],
        profile: str = "default",
        name: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        *,
        allow_degraded: bool = False,
        stdin: Stream = None,
        stdout: Stream = None,
        stderr: Stream = None,
        capture_output: bool = False,
    ) -> RunningSession:
        """Starts ``command`` in a session (``ws session start``) and returns at once.

        ``env`` adds variables to the environment `ws` runs with; what the
        command sees of it is what the profile's allow-list lets through
        (secret-looking names never pass). ``stdin``, ``stdout`` and
        ``stderr`` are the command's, as for :mod:`subprocess` (inherited by
        default); ``capture_output=True`` captures stdout and stderr into the
        :class:`Session`. Nothing of `ws`'s own goes to them: its messages go
        to the ``ws_sandbox`` logger.
        """
        return self._start(command, profile, name, env, allow_degraded, stdin, stdout, stderr, capture_output,
                           threaded=True)

    def _start(self, command: Sequence[PathLike], profile: str, name: Optional[str],
               env: Optional[Mapping[str, str]], allow_degraded: bool, stdin: Stream, stdout: Stream,
               stderr: Stream, capture_output: bool, threaded: bool) -> RunningSession:
        if isinstance(command, (str, bytes)):
            raise TypeError("command is a list of arguments, as for subprocess without shell=True")
        if not command:
            raise ValueError("command is empty")
        if capture_output:
            if stdout is not None or stderr is not None:
                raise ValueError("capture_output=True and stdout/stderr together")
            stdout = stderr = subprocess.PIPE
        read, write = os.pipe()
        args = [ws_binary(), "session", "start", "--events-fd", str(write), "--profile", profile]
        if name is not None:
            args += ["--name", name]
        if allow_degraded:
            args.append("--allow-degraded")
        args += ["--", *(os.fspath(c) for c in command)]
        try:
            proc = subprocess.Popen(args, cwd=self.path, env=_ws_env(env), pass_fds=(write,), stdin=stdin,
                                    stdout=stdout, stderr=stderr)
        except BaseException:
            os.close(read)
            raise
        finally:
            os.close(write)
        return RunningSession(self, proc, os.fdopen(read, "rb"), threaded)

    def run(
        self,
        command: Sequence[PathLike],
        profile: str = "default",
        name: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        on_event: Optional[Callable[[Dict[str, Any]], None]] = None,
        *,
        allow_degraded: bool = False,
        stdin: Stream = None,
        stdout: Stream = None,
        stderr: Stream = None,
        capture_output: bool = False,
    ) -> Session:
        """Runs ``command`` in a session and returns it when the command has ended.

        ``on_event`` is called, in this thread, with each audit record (a dict,
        as ``ws log --json`` prints it) while the command runs. If it raises,
        the session is ended (SIGTERM) and the exception propagates. The
        other arguments are :meth:`start`'s.
        """
        running = self._start(command, profile, name, env, allow_degraded, stdin, stdout, stderr, capture_output,
                              threaded=False)
        try:
            if on_event is not None:
                for record in running:
                    on_event(record)
            return running.wait()
        except BaseException:
            if running.poll() is None:
                running.terminate()
                try:
                    running.wait()
                except WsError:
                    pass
            raise

    def sessions(self) -> List[Session]:
        """The workspace's sessions, newest first."""
        return [Session(self, s) for s in reversed(json.loads(self._ws(["session", "list", "--json"])))]

    def session(self, id_or_name: str) -> Session:
        """The session with this id (a unique prefix is enough) or name."""
        return Session(self, self._show(id_or_name))
