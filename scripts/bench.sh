#!/usr/bin/env bash
# Restore benchmarks on the timing-modelled simulators: simulated seconds (what the hardware would take)
# and USB transfers per programmer and payload. Writes bench/results.md and prints it.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.build/release/bootmedic
[ -x "$bin" ] || bin=.build/debug/bootmedic
firmware=${BOOTMEDIC_FIRMWARE_DIR:-../shared/firmware}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rules=(--rules config/rules.toml --firmware-dir "$firmware" --backup-dir "$work/backups")

# One row: programmer, payload label, rule, part, extra rehearse arguments.
row() {
  local programmer=$1 label=$2 rule=$3 part=$4; shift 4
  local json
  json=$("$bin" rehearse "${rules[@]}" --programmer "$programmer" --part "$part" --rule "$rule" --json "$@" || true)
  python3 - "$programmer" "$label" "$json" <<'PY'
import json, sys
programmer, label, raw = sys.argv[1], sys.argv[2], sys.argv[3]
r = json.loads(raw)
steps = {s["step"]: s["seconds"] for s in r["steps"]}
print(f"| {programmer} | {label} | {r['outcome']} | {r['simulation']['seconds']:.2f} | {r['simulation']['usbTransfers']} | "
      f"{steps.get('backup', 0):.2f} | {steps.get('write-flash', 0):.2f} | {steps.get('verify-flash', 0):.2f} | {r.get('sck') or ''} |")
PY
}

{
  echo "| programmer | payload | outcome | simulated s | USB transfers | backup s | write s | verify s | SCK |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for p in usbasp usbtiny; do
    row $p "Caterina 4 KiB, factory chip (2 MHz)" pro-micro-5v atmega32u4
    "$bin" rehearse "${rules[@]}" --programmer $p --part atmega32u4 --rule pro-micro-5v --dump "$work/healthy-$p" >/dev/null
    row $p "Caterina 4 KiB, healthy board" pro-micro-5v atmega32u4 --initial-flash "$work/healthy-$p/flash.bin" --initial-fuses FF:D8:FB
    row $p "Caterina 4 KiB, 16 MHz chip" pro-micro-5v atmega32u4 --initial-fuses FF:D8:FB
    row $p "Caterina-Micro 32 KiB, factory chip" arduino-micro atmega32u4
  done
} > "$work/table.md"
mkdir -p bench
{
  echo "# bootmedic restore benchmark (simulated hardware time)"
  echo
  echo "Machine: $(uname -m), $(nproc) cores; $(date -u +%Y-%m-%d). Times are the simulators' timing model, not wall time."
  echo
  cat "$work/table.md"
} > bench/results.md
cat bench/results.md
