#!/usr/bin/env bash
# Runs Gale's coverage-guided fuzz targets (libFuzzer via cargo-fuzz) for a set time each.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]    default: 600 s each; targets: yaml_loader,
#                                            frame_decoder, multilang_parser
#
# The machine has only the stable toolchain: cargo-fuzz's sanitizer flags are nightly-only, so
# this sets RUSTC_BOOTSTRAP=1 for the fuzz workspace alone (fuzz/ is excluded from the main one).
# Each run is bounded: -max_total_time, a 2 GB RSS limit, a 256 MB single-allocation limit
# (an allocation sized by a length the input claims fails the run) and a 10 s per-input timeout.
# Corpora live in fuzz/corpus/TARGET (seeded from the repository's own files), crashes in
# fuzz/artifacts/TARGET; every crash found becomes a regression test named after it.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(yaml_loader frame_decoder multilang_parser)

if ! command -v cargo-fuzz >/dev/null; then
  echo "installing cargo-fuzz (crates.io)" >&2
  cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1

seed() {
  local t=$1 dir=fuzz/corpus/$1
  mkdir -p "$dir"
  case $t in
    yaml_loader)
      for f in topologies/*.yaml examples/*/*.yaml ../shared/reference/flux-examples/*.yaml; do
        [ -f "$f" ] && cp "$f" "$dir/$(basename "$f")"
      done ;;
    multilang_parser)
      printf '\x00{"pid": 1}\nend\n{"command":"emit","tuple":["a"],"anchors":["1"]}\nend\n' >"$dir/json"
      printf '\x01\x82\xa7command\xa4emit\xa5tuple\x91\xa1a' >"$dir/msgpack" ;;
    frame_decoder)
      printf '\x07\x00\x00\x00\x0e\x92\x91\x92\xa1a\xa7default\x91\x96\x01\x02\x00\x91\xa1w\x90' >"$dir/one-tuple" ;;
  esac
}

status=0
for t in "${targets[@]}"; do
  seed "$t"
  echo "== fuzzing $t for ${secs}s" >&2
  start=$(date +%s)
  if cargo fuzz run --release "$t" "fuzz/corpus/$t" -- \
      -max_total_time="$secs" -rss_limit_mb=2048 -malloc_limit_mb=256 -timeout=10 \
      -print_final_stats=1 2>"fuzz/$t.log"; then
    result=ok
  else
    result="FAILED (see fuzz/$t.log and fuzz/artifacts/$t)"
    status=1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "fuzz/$t.log" | grep -o '[0-9]*$' || echo "?")
  cov=$(grep -o 'cov: [0-9]*' "fuzz/$t.log" | tail -1 || true)
  echo "$t: $result after $(( $(date +%s) - start ))s, $runs inputs, $cov" >&2
done
exit $status
