#!/usr/bin/env bash
# make fuzz: runs every fuzz target of bootmedic-fuzz under libFuzzer for FUZZ_SECONDS each (default 60),
# from a corpus kept in .build-fuzz/corpus/<target> and seeded from real files (bootloaders from the
# firmware folder and Debian's arduino-core-avr, the project's TOML files, the toml-test corpus) and from
# the simulators' answers. A finding is copied into Tests/FuzzRegressions/<target>/, where `make test`
# replays it from then on; the run then exits 1.
#   FUZZ_SECONDS=5 make fuzz        a short pass (CI)
#   FUZZ_TARGETS="toml rules" …     some targets only
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-60}"
scratch=.build-fuzz
targets=(${FUZZ_TARGETS:-intel-hex toml rules stk500v1 buspirate stlink udev journal})

# One combined -sanitize flag, last on the command line: SwiftPM keeps its --sanitize values in a set and
# passes them in any order, and swiftc's last -sanitize wins, so `--sanitize=fuzzer --sanitize=address`
# built without coverage one time in two. --sanitize=fuzzer stays: it tells SwiftPM libFuzzer has main.
swift build --product bootmedic-fuzz --sanitize=fuzzer -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING \
  --scratch-path "$scratch" 2>&1 | grep -v "Cannot export local symbol" | tail -1
fuzzer="$scratch/debug/bootmedic-fuzz"
# The plain build writes the built-in seeds (libFuzzer's build has no main of ours).
swift build --product bootmedic-fuzz 2>&1 | tail -1
seeder="$(swift build --show-bin-path)/bootmedic-fuzz"

toml_test=/usr/share/gocode/src/github.com/BurntSushi/toml/internal/toml-test/tests
seed_files() {
  case "$1" in
    intel-hex) ls "${BOOTMEDIC_FIRMWARE_DIR:-/nonexistent}"/*.hex /usr/share/arduino/hardware/arduino/avr/bootloaders/*/*.hex 2>/dev/null || true ;;
    toml) ls config/*.toml config/*/*.toml "$toml_test"/valid/*.toml "$toml_test"/valid/*/*.toml 2>/dev/null || true ;;
    rules) ls config/rules.toml config/examples/*.toml 2>/dev/null || true ;;
  esac
}

printf '%-10s %10s %9s %8s %10s %s\n' target runs exec/s corpus bytes findings
status=0
for target in "${targets[@]}"; do
  corpus="$scratch/corpus/$target"; findings="$scratch/findings/$target"
  mkdir -p "$corpus" "$findings"
  for f in $(seed_files "$target"); do cp -n "$f" "$corpus/$(basename "$f")" 2>/dev/null || true; done
  "$seeder" --seeds "$target" "$corpus"
  log="$scratch/$target.log"
  # -timeout: one input running 10 s is a hang, reported like a crash.
  BOOTMEDIC_FUZZ_TARGET="$target" "$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=3072 \
    -print_final_stats=1 -artifact_prefix="$findings/" "$corpus" >"$log" 2>&1 || true
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  files=$(find "$corpus" -type f | wc -l); bytes=$(du -sb "$corpus" | cut -f1)
  found=$(find "$findings" -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) | wc -l)
  printf '%-10s %10s %9s %8s %10s %s\n' "$target" "${runs:-?}" "${speed:-?}" "$files" "$bytes" "$found"
  if ! grep -q "INITED cov:" "$log"; then
    echo "  $target: the fuzzer saw no coverage (is the build instrumented?); $log"; status=1; continue
  fi
  if [ "$found" -gt 0 ] || [ -z "$runs" ]; then
    status=1
    mkdir -p "Tests/FuzzRegressions/$target"
    for f in $(find "$findings" -type f); do cp "$f" "Tests/FuzzRegressions/$target/"; echo "  finding: Tests/FuzzRegressions/$target/$(basename "$f")"; done
    [ -n "$runs" ] || { echo "  the fuzzer did not run; its output:"; tail -20 "$log"; }
    grep -m1 -E "finding in|ERROR: libFuzzer|ERROR: AddressSanitizer|Fatal error" "$log" | sed 's/^/  /' || true
  fi
done
exit $status
