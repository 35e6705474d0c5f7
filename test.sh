#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine: installs what the tests
# need, then checks formatting and lints and runs every test. The tests mount
# btrfs, xfs and ext4 loop images and switch to an unprivileged user, so they
# run as root (this script re-runs itself with sudo when it is not).
set -euo pipefail
cd "$(dirname "$0")"

if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "test.sh: the tests need root (loop mounts); run it as root" >&2; exit 1; }
  exec sudo --preserve-env=PATH,CARGO_HOME,RUSTUP_HOME,CARGO_TARGET_DIR "$0" "$@"
fi

need=()
command -v mkfs.btrfs >/dev/null || need+=(btrfs-progs)
command -v mkfs.xfs   >/dev/null || need+=(xfsprogs)
command -v mkfs.ext4  >/dev/null || need+=(e2fsprogs)
command -v git        >/dev/null || need+=(git)
command -v setpriv    >/dev/null || need+=(util-linux)
command -v mount      >/dev/null || need+=(mount)
command -v script     >/dev/null || need+=(bsdutils)
command -v perl       >/dev/null || need+=(perl-base)
command -v keyctl     >/dev/null || need+=(keyutils)
command -v dbus-daemon >/dev/null || need+=(dbus-daemon)
command -v dbus-send  >/dev/null || need+=(dbus-bin)
command -v gnome-keyring-daemon >/dev/null || need+=(gnome-keyring)
command -v curl       >/dev/null || need+=(curl ca-certificates)
command -v bash       >/dev/null || need+=(bash)
command -v patch      >/dev/null || need+=(patch)
# `ws review` and the agents' own TUIs are driven in a real terminal.
command -v tmux       >/dev/null || need+=(tmux)
command -v groff      >/dev/null || need+=(groff-base)  # the man pages are rendered
# The recorder service's tests: a hostile client in Python, socket activation, unit checks.
[ -x /usr/bin/python3 ] || need+=(python3)
# The Python SDK's tests run in a venv: Debian ships venv's pip apart, in python3-venv.
probe=$(mktemp -d)
python3 -m venv "$probe/venv" >/dev/null 2>&1 || need+=(python3-venv)
rm -rf "$probe"
command -v systemd-socket-activate >/dev/null || need+=(systemd)
command -v useradd    >/dev/null || need+=(passwd)
if [ ${#need[@]} -gt 0 ]; then
  echo "test.sh: installing ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Loop devices for the filesystem images (absent on some minimal machines).
[ -e /dev/loop-control ] || modprobe loop 2>/dev/null || true
# The real agent CLIs at pinned versions (npm; nodejs and npm from Debian if missing).
tests/agents/install.sh

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# The Python SDK (python/): the wheel `pip install ./python` builds from this
# checkout, with the dev profile so that the ws just tested is reused rather
# than built again for release, in a venv under the target directory, with
# pytest from PyPI.
venv="${CARGO_TARGET_DIR:-target}/python-sdk"
[ -x "$venv/bin/pip" ] || python3 -m venv --clear "$venv"
WS_SANDBOX_CARGO_PROFILE=dev "$venv/bin/pip" install -q --force-reinstall --no-deps ./python
"$venv/bin/pip" install -q pytest
set +e
"$venv/bin/python" -m pytest -q -p no:cacheprovider python/tests 2>&1 | tee -a "$log"
py_status=${PIPESTATUS[0]}
set -e
# One closing line for the whole suite, summed over every test binary and pytest.
awk '/^test result:/ { p += $4; f += $6; next }
     /^[0-9]+ [a-z]+.* in [0-9.]+s( \([0-9:]+\))?$/ { for (i = 2; i <= NF; i++) { w = $i; sub(/,$/, "", w)
                        if (w == "passed") p += $(i-1); if (w == "failed" || w == "error" || w == "errors") f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
[ "$status" = 0 ] || exit "$status"
exit "$py_status"
