#!/usr/bin/env bash
# Fuzz every parser that sees client or operator input (fuzz/fuzz_targets/*), each for a
# bounded time, with cargo-fuzz (libFuzzer). Not part of CI, which runs the same contracts
# as property tests (gateway/src/fuzzing.rs, backend/src/fuzzing.rs).
#
#   scripts/fuzz.sh                  # every target, 60 s each
#   FUZZ_SECONDS=600 scripts/fuzz.sh jwt_token gateway_yaml
#
# New inputs that reach new code are kept in fuzz/corpus/<target>/ (commit them); a crash
# leaves its input in fuzz/artifacts/<target>/ and makes this script exit 1. Targets run
# with --sanitizer none: the address sanitizer needs a nightly toolchain, and the code under
# test forbids `unsafe`, so a fuzzer finds panics and broken contracts (the targets assert),
# not memory errors.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${FUZZ_SECONDS:-60}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# A target dir outside the clone, shared by runs (the instrumented build takes minutes).
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-/var/tmp/fuzz-target}"

targets=("$@")
if ((${#targets[@]} == 0)); then
  mapfile -t targets < <(cargo fuzz list)
fi

echo "== building the instrumented targets (minutes on a cold target dir)"
cargo fuzz build --sanitizer none -O

failed=()
summary=()
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  log=$(mktemp)
  echo "== $target (${seconds}s)"
  if cargo fuzz run --sanitizer none -O "$target" "corpus/$target" -- \
      -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
    result=ok
  else
    result=CRASH
    failed+=("$target")
    tail -40 "$log"
  fi
  runs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || echo "?")
  corpus=$(find "corpus/$target" -type f | wc -l)
  summary+=("$(printf '%-16s %-6s %12s executions  %5s corpus files' "$target" "$result" "$runs" "$corpus")")
  rm -f "$log"
done

echo "== summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
if ((${#failed[@]})); then
  echo "crashes in: ${failed[*]} (inputs in fuzz/artifacts/)"
  exit 1
fi
