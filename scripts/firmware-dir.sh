#!/usr/bin/env bash
# Prints the folder of real bootloader files the tests and benchmarks read (never copied into the
# project): $BOOTMEDIC_FIRMWARE_DIR if set, else ../shared/firmware next to this checkout, else the same
# next to the repository this one was cloned from (a fresh clone in /tmp, say). Fails if none exists.
set -euo pipefail
cd "$(dirname "$0")/.."
candidates=("${BOOTMEDIC_FIRMWARE_DIR:-}" ../shared/firmware)
origin=$(git config --get remote.origin.url 2>/dev/null || true)
[ -d "$origin" ] && candidates+=("$origin/../shared/firmware")
for dir in "${candidates[@]}"; do
  [ -n "$dir" ] && [ -f "$dir/MANIFEST.md" ] && { (cd "$dir" && pwd); exit 0; }
done
echo "no firmware folder: set BOOTMEDIC_FIRMWARE_DIR to the shared firmware files (MANIFEST.md)" >&2
exit 1
