"""A PEP 517 backend for `ws-sandbox`: builds `ws` from this checkout with
cargo and writes a wheel holding the Python package and the binary at
`ws_sandbox/_bin/ws`.

Why not maturin: its `bin` layout installs the binary into the
environment's scripts directory rather than inside the package, and
`pip install` would first download it; this backend needs only cargo.

Settings (environment variables, or `--config-settings KEY=VALUE`):
  WS_SANDBOX_CARGO_PROFILE / profile   cargo profile, default `release`
                                       (`dev` reuses the test build)
  CARGO_TARGET_DIR                     honoured, as cargo honours it
  CARGO                                the cargo to run, default `cargo`
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from pathlib import Path

NAME = "ws_sandbox"
DIST = "ws-sandbox"
HERE = Path(__file__).resolve().parent.parent  # python/
ROOT = HERE.parent  # the checkout


def _project() -> dict:
    try:
        import tomllib  # Python 3.11+
    except ModuleNotFoundError:  # pragma: no cover - older Pythons
        return {"version": _version_from_text(), "description": "", "requires-python": ">=3.9"}
    with open(HERE / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]


def _version_from_text() -> str:
    for line in (HERE / "pyproject.toml").read_text().splitlines():
        if line.startswith("version"):
            return line.split("=", 1)[1].strip().strip('"')
    raise RuntimeError("pyproject.toml has no version")


def _metadata() -> str:
    p = _project()
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {DIST}",
        f"Version: {p['version']}",
        f"Summary: {p.get('description', '')}",
        f"Requires-Python: {p.get('requires-python', '>=3.9')}",
        "License: MIT OR Apache-2.0",
        "Description-Content-Type: text/markdown",
        "",
    ]
    readme = HERE / "README.md"
    return "\n".join(lines) + "\n" + (readme.read_text() if readme.exists() else "")


def _tag() -> str:
    # The binary is built for this machine: its platform, any Python 3.
    plat = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    return f"py3-none-{plat}"


def _setting(config_settings, key: str, env: str, default: str) -> str:
    if config_settings and key in config_settings:
        return str(config_settings[key])
    return os.environ.get(env) or default


def _build_ws(profile: str) -> Path:
    """Runs cargo and returns the path of the `ws` executable it built."""
    if not (ROOT / "Cargo.toml").exists():
        raise RuntimeError(
            f"ws-sandbox builds `ws` from the Cargo workspace above {HERE}; build the wheel from a checkout"
        )
    cargo = os.environ.get("CARGO", "cargo")
    cmd = [cargo, "build", "--locked", "-p", "ws", "--bin", "ws", "--profile", profile,
           "--message-format=json-render-diagnostics"]
    proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}); its messages are above")
    exe = None
    for line in proc.stdout.splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if msg.get("reason") == "compiler-artifact" and msg.get("target", {}).get("name") == "ws" \
                and msg.get("executable"):
            exe = msg["executable"]
    if exe is None:
        raise RuntimeError(f"`{' '.join(cmd)}` named no `ws` executable")
    return Path(exe)


def _record_line(arcname: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{arcname},sha256={digest},{len(data)}"


def _write(zf: zipfile.ZipFile, record: list, arcname: str, data: bytes, mode: int = 0o644) -> None:
    info = zipfile.ZipInfo(arcname, date_time=(2020, 1, 1, 0, 0, 0))
    info.external_attr = (0o100000 | mode) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, data)
    record.append(_record_line(arcname, data))


def get_requires_for_build_wheel(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    version = _project()["version"]
    d = Path(metadata_directory) / f"{NAME}-{version}.dist-info"
    d.mkdir(parents=True, exist_ok=True)
    (d / "METADATA").write_text(_metadata())
    (d / "WHEEL").write_text(_wheel_file())
    return d.name


def _wheel_file() -> str:
    return f"Wheel-Version: 1.0\nGenerator: ws_build\nRoot-Is-Purelib: false\nTag: {_tag()}\n"


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    profile = _setting(config_settings, "profile", "WS_SANDBOX_CARGO_PROFILE", "release")
    exe = _build_ws(profile)
    version = _project()["version"]
    with tempfile.TemporaryDirectory() as tmp:
        # Debug information is for ws's developers: the bundled copy goes
        # without (a dev build is ~270 MB with it, ~40 MB without).
        binary = Path(tmp) / "ws"
        shutil.copy2(exe, binary)
        strip = shutil.which("strip")
        if strip:
            subprocess.run([strip, "--strip-debug", str(binary)], check=False)
        data = binary.read_bytes()
    wheel_name = f"{NAME}-{version}-{_tag()}.whl"
    dist_info = f"{NAME}-{version}.dist-info"
    record: list = []
    path = Path(wheel_directory) / wheel_name
    with zipfile.ZipFile(path, "w") as zf:
        for src in sorted((HERE / NAME).rglob("*")):
            if src.is_dir() or "__pycache__" in src.parts or src.suffix == ".pyc":
                continue
            rel = src.relative_to(HERE).as_posix()
            if rel.startswith(f"{NAME}/_bin/"):
                continue
            _write(zf, record, rel, src.read_bytes())
        _write(zf, record, f"{NAME}/_bin/ws", data, 0o755)
        _write(zf, record, f"{dist_info}/METADATA", _metadata().encode())
        _write(zf, record, f"{dist_info}/WHEEL", _wheel_file().encode())
        record.append(f"{dist_info}/RECORD,,")
        info = zipfile.ZipInfo(f"{dist_info}/RECORD", date_time=(2020, 1, 1, 0, 0, 0))
        info.external_attr = 0o100644 << 16
        zf.writestr(info, "\n".join(record) + "\n")
    print(f"ws_build: {wheel_name} ({profile} build of {exe})", file=sys.stderr)
    return wheel_name
