#!/usr/bin/env bash
# `make soak`: 30 minutes of connection churn against a release hub, its memory and open files sampled each
# minute (poussr-bench soak); the result goes to the "Soak" section of bench/RESULTS.md. Extra arguments go
# to poussr-bench soak (e.g. --minutes 5 for a shorter run). Fails when the growth after warm-up is 5 % or more.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh hub
cargo build --release -p poussr -p poussr-bench
out=$(mktemp)
status=0
target/release/poussr-bench soak --hub target/release/poussr "$@" >"$out" || status=$?
python3 - "$out" <<'PY'
import re, sys
section = open(sys.argv[1]).read().strip()
if not section:
    sys.exit("the soak wrote no results")
path = "bench/RESULTS.md"
text = open(path).read()
pattern = re.compile(r"<!-- soak:begin.*?<!-- soak:end -->", re.S)
text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section + "\n"
open(path, "w").write(text)
PY
cat "$out"
rm -f "$out"
exit $status
