#!/usr/bin/env bash
# Runs every fuzz target of the module for FUZZTIME each (default 4s), from
# its committed seed corpus (testdata/fuzz/<target>/ and its f.Add seeds),
# and prints how many inputs each one tried. About three minutes for
# the module's 20-odd targets. A target that fails leaves the input that
# broke it in its package's testdata/fuzz/<target>/: commit that file with
# the fix, so the input stays a regression test run by every `go test`.
#
#   scripts/fuzz-ci.sh                 # every target
#   FUZZTIME=1m scripts/fuzz-ci.sh     # longer
#   scripts/fuzz-ci.sh ./queue/...     # the targets under some packages
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-4s}
patterns=("$@")
[ ${#patterns[@]} -gt 0 ] || patterns=(./...)

log=$(mktemp)
trap 'rm -f "$log"' EXIT
total=0 targets=0 failed=()
for dir in $(go list -f '{{.Dir}}' "${patterns[@]}"); do
	for fuzz in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
		pkg=./$(realpath --relative-to=. "$dir")
		targets=$((targets + 1))
		run() { go test -run '^$' -fuzz "^${fuzz}\$" -fuzztime "$FUZZTIME" "$pkg" >"$log" 2>&1; }
		# Go's fuzzing engine can report "context deadline exceeded" when
		# -fuzztime ends while it handles a new input, with no failing input
		# written: not a finding. That target runs once more.
		if run || { grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input written' "$log" &&
			echo "$pkg $fuzz: the fuzzing engine stopped at its deadline without a finding; running it again" && run; }; then
			status=ok
		else
			status=FAILED
			failed+=("$pkg $fuzz")
			cat "$log"
		fi
		execs=$(grep -o 'execs: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo 0)
		total=$((total + execs))
		printf '%-8s %-28s %-26s %10s inputs\n' "$status" "$pkg" "$fuzz" "$execs"
	done
done
printf '%d targets, %d inputs in all (%s each)\n' "$targets" "$total" "$FUZZTIME"
if [ ${#failed[@]} -gt 0 ]; then
	printf 'failed: %s\n' "${failed[@]}"
	echo "the inputs that failed are in the packages' testdata/fuzz/: fix the code, and commit them"
	exit 1
fi
