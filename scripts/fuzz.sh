#!/usr/bin/env bash
# `make fuzz`: runs each cargo-fuzz target (fuzz/fuzz_targets) for FUZZ_SECONDS (default 600) with
# libFuzzer and AddressSanitizer, one after the other, then writes executions, coverage and findings to the
# "Fuzzing" section of bench/RESULTS.md. Usage: scripts/fuzz.sh [target...] (default: all four).
# A crash stops that target, leaves its input in fuzz/artifacts/<target>/, and makes the script fail.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-600}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(pusher_frame v1_frame api_signature channel_name)

# cargo-fuzz needs a nightly toolchain (for -Zsanitizer) and the cargo-fuzz command.
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "make fuzz needs a nightly Rust toolchain: rustup toolchain install nightly" >&2
  exit 1
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
(cd fuzz && cargo +nightly fuzz build)

rows=()
failed=0
for target in "${targets[@]}"; do
  corpus="fuzz/corpus/$target"
  mkdir -p "$corpus"
  log=$(mktemp)
  echo "fuzzing $target for $seconds s..."
  status=0
  (cd fuzz && cargo +nightly fuzz run "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -dict=pusher.dict -print_final_stats=1) >"$log" 2>&1 || status=$?
  runs=$(grep -a -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  rate=$(grep -a -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  cov=$(grep -a -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
  ft=$(grep -a -o 'ft: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
  corp=$(find "$corpus" -type f | wc -l)
  if [ "$status" -eq 0 ]; then
    finding="none"
  else
    failed=1
    artifact=$(grep -a -o 'Test unit written to [^ ]*' "$log" | tail -1 | sed 's/Test unit written to //')
    finding="**crash** (exit $status): ${artifact:-see the log}"
    tail -40 "$log" >&2
  fi
  rows+=("| \`$target\` | $seconds | ${runs:-?} | ${rate:-?} | ${cov:-?} | ${ft:-?} | $corp | $finding |")
  rm -f "$log"
done

section=$(mktemp)
{
  echo "<!-- fuzz:begin (written by make fuzz) -->"
  echo "## Fuzzing"
  echo
  echo "Written by \`make fuzz\` on $(date -u +%Y-%m-%d): $(nproc) cores, $(cargo +nightly --version | cut -d' ' -f1-2),"
  echo "libFuzzer with AddressSanitizer and debug assertions, one target at a time. *Edges* is libFuzzer's"
  echo "\`cov\` (code edges reached), *features* its \`ft\`; the corpus starts from \`fuzz/seeds/\` and the"
  echo "dictionary \`fuzz/pusher.dict\`. Each target also checks properties, not only the absence of panics"
  echo "(see the comment at the top of each file in \`fuzz/fuzz_targets/\`)."
  echo
  echo "| target | seconds | executions | per second | edges | features | corpus | findings |"
  echo "|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo "<!-- fuzz:end -->"
} >"$section"
python3 - "$section" <<'EOF'
import re, sys
section = open(sys.argv[1]).read().rstrip("\n")
path = "bench/RESULTS.md"
text = open(path).read()
pattern = re.compile(r"<!-- fuzz:begin.*?<!-- fuzz:end -->", re.S)
text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section + "\n"
open(path, "w").write(text)
EOF
cat "$section"
rm -f "$section"
exit $failed
