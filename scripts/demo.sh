#!/usr/bin/env bash
# The demo: bootmedic proving a rules file, then restoring real bootloaders on simulated programmers and
# chips (the same pipeline and drivers a bench runs), including a board that is already healthy and a
# fault.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.build/debug/bootmedic
firmware=${BOOTMEDIC_FIRMWARE_DIR:-../shared/firmware}
[ -d "$firmware" ] || { echo "demo: no firmware folder at $firmware (set BOOTMEDIC_FIRMWARE_DIR)" >&2; exit 1; }
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rules=(--rules config/rules.toml --firmware-dir "$firmware" --backup-dir "$work/backups")

step $bin rules check config/rules.toml --firmware-dir "$firmware"
step $bin rehearse "${rules[@]}" --programmer usbasp --part atmega32u4 --rule pro-micro-5v --dump "$work/board"
echo
echo "# The same board again: already healthy, nothing is written."
step $bin rehearse "${rules[@]}" --programmer usbasp --part atmega32u4 --rule pro-micro-5v \
  --initial-flash "$work/board/flash.bin" --initial-fuses FF:D8:FB
echo
echo "# A PS2AVRGB keyboard through a USBtinyISP:"
step $bin rehearse "${rules[@]}" --programmer usbtiny --part atmega32a --rule ps2avrgb-bootloadhid
echo
echo "# The ISP cable comes loose halfway through: the failure is named and the backup kept."
step $bin rehearse "${rules[@]}" --programmer usbasp --part atmega32u4 --rule pro-micro-5v --fault target-vanishes || echo "(exit $?)"
step $bin fuses decode atmega32u4 --low 0xFF --high 0xD8 --extended 0xCB
