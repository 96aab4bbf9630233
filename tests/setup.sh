#!/usr/bin/env bash
# What the test command needs, installed when missing, checked, or named in one line before any
# test runs: Debian packages (apt-get, when it is usable), Node.js at least the version the pinned
# clients ask for (the pinned Node of .ci/node when the host's is older), `npm ci` of the pinned
# clients (.ci/claude-code, .ci/codex, .ci/gemini-cli, tests/sdk-ts) when node_modules is missing
# or was installed from another lock, the Python venv (.venv) with tests/sdk/requirements.txt,
# and the versions each installed client reports.
#
# tests/run.sh sources it (so the PATH it sets reaches the tests); run alone: tests/setup.sh.
# Idempotent: a second run installs nothing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
setup_root=$PWD

# Seconds one `npm ci` / `pip install` may take, and a client's `--version`.
SETUP_INSTALL_TIMEOUT=900
SETUP_VERSION_TIMEOUT=60
# The pinned npm clients, each a package.json with its package-lock.json.
SETUP_NPM_DIRS=(.ci/claude-code .ci/codex .ci/gemini-cli tests/sdk-ts)

setup_die() {
  echo "tests/setup.sh: $*" >&2
  exit 1
}

# RINGWAY_NO_APT=1: never install with apt-get, only name what is missing.
setup_apt_usable() {
  [ -z "${RINGWAY_NO_APT:-}" ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]
}

setup_apt_updated=
setup_apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  if [ -z "$setup_apt_updated" ]; then
    apt-get update -qq -o DPkg::Lock::Timeout=600 || setup_die "apt-get update failed (needed to install: $*)"
    setup_apt_updated=1
  fi
  apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 "$@" >/dev/null \
    || setup_die "apt-get install $* failed"
}

# ---- Debian packages: a command missing -> its package, all installed in one go ----------------
echo "== setup: system packages"
setup_missing=() setup_pkgs=()
setup_need() { # COMMAND-CHECK PACKAGE WHAT
  if ! eval "$1" >/dev/null 2>&1; then
    setup_missing+=("$3")
    setup_pkgs+=("$2")
  fi
}
command -v cargo >/dev/null 2>&1 || setup_die "missing: Rust (cargo); install it with rustup (https://rustup.rs), stable $(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml) or later"
setup_need 'command -v python3' python3 python3
setup_need 'python3 -m venv --help' python3-venv "python3 venv (the Python SDK tests' .venv)"
setup_need 'python3 -m ensurepip --version' python3-venv "python3 ensurepip"
# The TLS tests make their test CA and certificates with it.
setup_need 'command -v openssl' openssl openssl
# tests/observability.rs checks a real /metrics scrape with promtool.
setup_need 'command -v promtool' prometheus "promtool (Debian package prometheus)"
# tests/cli.rs verifies contrib/ringway.service with systemd-analyze.
setup_need 'command -v systemd-analyze' systemd "systemd-analyze (Debian package systemd)"
# tests/cluster_redis.rs starts throwaway Redis servers (shared limits and budgets).
setup_need 'command -v redis-server && command -v redis-cli' redis-server "redis-server (Debian package redis-server)"
# tests/fleet.rs runs contrib/nginx-fleet.conf and contrib/haproxy.cfg in front of two nodes
# (sbin: not on every user's PATH).
setup_need 'command -v nginx || test -x /usr/sbin/nginx' nginx-light "nginx (Debian package nginx-light)"
setup_need 'command -v haproxy || test -x /usr/sbin/haproxy' haproxy "haproxy (Debian package haproxy)"
# The agent tests and the aarch64 smoke speak to the binary with curl.
setup_need 'command -v curl' curl curl
# tests/cluster_postgres.rs starts throwaway PostgreSQL servers from Debian's server binaries.
setup_need 'compgen -G "/usr/lib/postgresql/*/bin/initdb"' postgresql "PostgreSQL server (Debian package postgresql)"
setup_need 'command -v node' nodejs "node"
setup_need 'command -v npm' npm npm
if [ ${#setup_pkgs[@]} -gt 0 ]; then
  # One package may cover two checks (python3-venv).
  mapfile -t setup_pkgs < <(printf '%s\n' "${setup_pkgs[@]}" | sort -u)
  if ! setup_apt_usable; then
    setup_die "missing: $(printf '%s, ' "${setup_missing[@]}" | sed 's/, $//'); install the Debian/Ubuntu packages: apt-get install ${setup_pkgs[*]} (or run this as root where apt-get works)"
  fi
  echo "installing with apt-get: ${setup_pkgs[*]}"
  setup_apt_install "${setup_pkgs[@]}"
fi
promtool --version >/dev/null 2>&1 || setup_die "promtool is installed but does not run"
echo "$(openssl version); $(promtool --version 2>&1 | head -1); $(python3 --version)"

# ---- Node.js: at least what every pinned client's engines field asks for ------------------------
# The highest major version any pinned package (each dependency named in a package.json, as its
# lock records it) asks for with `engines.node`.
setup_node_wanted() {
  python3 - "${SETUP_NPM_DIRS[@]}" <<'PY'
import json, re, sys
want, who = 0, "none"
for d in sys.argv[1:]:
    deps = json.load(open(f"{d}/package.json")).get("dependencies", {})
    lock = json.load(open(f"{d}/package-lock.json"))["packages"]
    for name in deps:
        spec = lock.get(f"node_modules/{name}", {}).get("engines", {}).get("node", "")
        m = re.search(r"(\d+)", spec)
        if m and int(m.group(1)) > want:
            want, who = int(m.group(1)), f"{name} ({spec})"
print(want, who)
PY
}
setup_node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

echo "== setup: Node.js"
read -r setup_node_want setup_node_who < <(setup_node_wanted)
# The pinned Node of .ci/node, when an earlier run installed it.
for setup_d in "$setup_root"/.ci/node/node_modules/node-linux-*/bin; do
  [ -x "$setup_d/node" ] && export PATH="$setup_d:$PATH"
done
if [ "$(setup_node_major)" -lt "$setup_node_want" ]; then
  echo "node $(node --version) is older than $setup_node_want, which $setup_node_who needs: installing the pinned Node of .ci/node"
  timeout "$SETUP_INSTALL_TIMEOUT" npm ci --prefix .ci/node --no-audit --no-fund --loglevel=error \
    || setup_die "npm ci --prefix .ci/node failed: install Node.js $setup_node_want or later"
  for setup_d in "$setup_root"/.ci/node/node_modules/node-linux-*/bin; do
    [ -x "$setup_d/node" ] && export PATH="$setup_d:$PATH"
  done
fi
[ "$(setup_node_major)" -ge "$setup_node_want" ] \
  || setup_die "node $(node --version 2>&1) is too old: $setup_node_who needs Node.js $setup_node_want or later"
echo "node $(node --version) ($(command -v node)), npm $(npm --version); the pinned clients need $setup_node_want or later"

# ---- the pinned npm clients ---------------------------------------------------------------------
echo "== setup: pinned npm clients"
for setup_dir in "${SETUP_NPM_DIRS[@]}"; do
  setup_stamp=$setup_dir/node_modules/.ringway-lock-sha
  setup_sha=$(sha256sum "$setup_dir/package-lock.json" | cut -d' ' -f1)
  if [ "$(cat "$setup_stamp" 2>/dev/null)" != "$setup_sha" ]; then
    echo "npm ci --prefix $setup_dir (node_modules missing or from another lock)"
    timeout "$SETUP_INSTALL_TIMEOUT" npm ci --prefix "$setup_dir" --no-audit --no-fund --loglevel=error \
      || setup_die "npm ci --prefix $setup_dir failed"
    echo "$setup_sha" >"$setup_stamp"
  fi
  # Every dependency of package.json, at exactly its pinned version.
  python3 - "$setup_dir" <<'PY' || exit 1
import json, sys
d = sys.argv[1]
bad = []
for name, want in json.load(open(f"{d}/package.json")).get("dependencies", {}).items():
    try:
        have = json.load(open(f"{d}/node_modules/{name}/package.json"))["version"]
    except OSError:
        have = "not installed"
    print(f"{d}: {name} {have}")
    if have != want:
        bad.append(f"{name} is {have}, package.json pins {want}")
if bad:
    sys.exit(f"tests/setup.sh: {d}: " + "; ".join(bad) + f" (rm -rf {d}/node_modules and run again)")
PY
done
# The agents' own word on their versions (their native binaries must run here).
setup_claude=$(node -p 'require("./.ci/claude-code/package.json").dependencies["@anthropic-ai/claude-code"]')
setup_have=$(timeout "$SETUP_VERSION_TIMEOUT" .ci/claude-code/node_modules/.bin/claude --version) \
  || setup_die "the installed claude (.ci/claude-code) does not run"
[ "$setup_have" = "$setup_claude (Claude Code)" ] \
  || setup_die "claude --version says '$setup_have', want '$setup_claude (Claude Code)'"
setup_want=$(node -p 'require("./.ci/codex/package.json").dependencies["@openai/codex"]')
setup_have=$(timeout "$SETUP_VERSION_TIMEOUT" .ci/codex/node_modules/.bin/codex --version) \
  || setup_die "the installed codex (.ci/codex) does not run"
[ "$setup_have" = "codex-cli $setup_want" ] \
  || setup_die "codex --version says '$setup_have', want 'codex-cli $setup_want'"
setup_gemini=$(node -p 'require("./.ci/gemini-cli/package.json").dependencies["@google/gemini-cli"]')
# A scratch HOME: the CLI writes its project registry under ~/.gemini even for --version.
setup_home=$(mktemp -d)
setup_have=$(env -i PATH="$PATH" HOME="$setup_home" TMPDIR="$setup_home" \
  timeout "$SETUP_VERSION_TIMEOUT" .ci/gemini-cli/node_modules/.bin/gemini --version) \
  || { rm -rf "$setup_home"; setup_die "the installed gemini (.ci/gemini-cli) does not run"; }
rm -rf "$setup_home"
[ "$setup_have" = "$setup_gemini" ] \
  || setup_die "gemini --version says '$setup_have', want '$setup_gemini'"
echo "claude $setup_claude, codex $setup_want and gemini $setup_gemini run"

# ---- the Python venv ----------------------------------------------------------------------------
echo "== setup: Python venv (.venv, tests/sdk/requirements.txt)"
[ -x .venv/bin/python ] || python3 -m venv .venv || setup_die "python3 -m venv .venv failed"
setup_stamp=.venv/.ringway-requirements-sha
setup_sha=$(sha256sum tests/sdk/requirements.txt | cut -d' ' -f1)
if [ "$(cat "$setup_stamp" 2>/dev/null)" != "$setup_sha" ]; then
  timeout "$SETUP_INSTALL_TIMEOUT" .venv/bin/python -m pip install --quiet --disable-pip-version-check \
    -r tests/sdk/requirements.txt || setup_die "pip install -r tests/sdk/requirements.txt failed"
  echo "$setup_sha" >"$setup_stamp"
fi
.venv/bin/python -m pip freeze --disable-pip-version-check | grep -iE '^(openai|anthropic|google-genai|pytest|boto3|botocore|google-auth)==' | tr '\n' ' '
echo
echo "== setup: done"
