#!/usr/bin/env bash
# The real agent CLIs the e2e tests run (tests/e2e/claude.rs, codex.rs), at
# pinned versions, from npm into one fixed prefix, so a test never runs
# whatever happens to be on the machine's PATH. Called by test.sh; safe to
# re-run (a package already installed at its version is left alone).
# The tests look in $WS_TEST_AGENTS (default /opt/ws-test-agents)/bin.
set -euo pipefail
prefix=${WS_TEST_AGENTS:-/opt/ws-test-agents}
packages=("@anthropic-ai/claude-code@2.1.197" "@openai/codex@0.171.0")

if ! command -v npm >/dev/null; then
  echo "tests/agents/install.sh: installing nodejs npm" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm ca-certificates >/dev/null
fi

installed() { # NAME VERSION: whether the prefix holds exactly that version
  local manifest="$prefix/lib/node_modules/$1/package.json"
  [ -f "$manifest" ] && grep -q "\"version\": *\"$2\"" "$manifest"
}

want=()
for spec in "${packages[@]}"; do
  name=${spec%@*} version=${spec##*@}
  installed "$name" "$version" || want+=("$spec")
done
if [ ${#want[@]} -gt 0 ]; then
  echo "tests/agents/install.sh: installing ${want[*]} into $prefix" >&2
  mkdir -p "$prefix"
  # --prefix: bin/ and lib/node_modules/ under the prefix, nothing global.
  # No audit, fund or update checks: they only phone home.
  npm install --global --prefix "$prefix" --no-audit --no-fund --no-update-notifier \
    --loglevel=error "${want[@]}" >&2
fi
# Claude Code's postinstall copies the platform's native binary over a stub
# (bin/claude.exe); npm skips it under --ignore-scripts or a scripts policy.
# Run it ourselves then: it only copies a file from the installed packages.
claude_dir="$prefix/lib/node_modules/@anthropic-ai/claude-code"
if ! "$prefix/bin/claude" --version >/dev/null 2>&1; then
  echo "tests/agents/install.sh: running Claude Code's postinstall (npm skipped it)" >&2
  (cd "$claude_dir" && node install.cjs >&2)
fi
# Each CLI must start here; a broken install shows up now, not as a
# puzzling test failure later.
"$prefix/bin/claude" --version >/dev/null
"$prefix/bin/codex" --version >/dev/null
