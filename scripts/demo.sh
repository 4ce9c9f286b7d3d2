#!/usr/bin/env bash
# The demo: what bootmedic knows and proves before it touches a chip, on the real bootloader files.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.build/debug/bootmedic
firmware=${BOOTMEDIC_FIRMWARE_DIR:-../shared/firmware}
[ -d "$firmware" ] || { echo "demo: no firmware folder at $firmware (set BOOTMEDIC_FIRMWARE_DIR)" >&2; exit 1; }
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

step $bin rules check config/rules.toml --firmware-dir "$firmware"
step $bin hex info "$firmware/Caterina-promicro16.hex"
step $bin fuses decode atmega32u4 --low 0xFF --high 0xD8 --extended 0xCB
echo
echo "# A fuse set that would lock ISP out is refused:"
step $bin fuses decode atmega328p --low 0x62 --high 0x59 --extended 0xFF || echo "(exit $?)"
