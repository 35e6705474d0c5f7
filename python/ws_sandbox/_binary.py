"""Finding the `ws` binary the package drives."""

from __future__ import annotations

import os
from pathlib import Path

from ._errors import WsError

#: Names a `ws` binary to use instead of the bundled one (development).
ENV = "WS_BINARY"


def ws_binary() -> str:
    """The `ws` executable: ``$WS_BINARY`` if set, else the one bundled in the wheel."""
    override = os.environ.get(ENV)
    if override:
        if not os.access(override, os.X_OK):
            raise WsError(f"{ENV}={override}: not an executable file", f"unset {ENV} to use the bundled ws")
        return override
    bundled = Path(__file__).resolve().parent / "_bin" / "ws"
    if bundled.is_file() and os.access(bundled, os.X_OK):
        return str(bundled)
    raise WsError(
        f"no ws binary bundled at {bundled}",
        f"install the package with `pip install ./python` from a ws checkout, or set {ENV} to a ws binary",
    )
