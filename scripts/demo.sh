#!/usr/bin/env bash
# The demo: bootmedic proving a rules file, the bench agent running a morning at a virtual bench
# (simulated USBasp, USBtinyISP and ST-Link with boards coming and going) and journaling every step, then
# single restores on simulated programmers and chips (the same pipeline and drivers a bench runs). First
# with the shipped rules and Debian's Arduino bootloaders, then, where the guide's bootloader files are at
# hand (../shared/firmware or BOOTMEDIC_FIRMWARE_DIR), with the guide's boards.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.build/debug/bootmedic
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# show_journal SINCE: what the agent journaled (or its console log when no journald runs).
show_journal() {
  if [ -S /run/systemd/journal/socket ]; then
    echo
    echo "# What it journaled (journalctl SYSLOG_IDENTIFIER=bootmedic, steps left out):"
    journalctl --no-pager -o short --since "$1" SYSLOG_IDENTIFIER=bootmedic -p 6 | grep -v "^-- "
    step $bin status
  else
    echo "# (no journald running: the agent's console log)"
    cat "$work/agent.log"
  fi
}

# The shipped rules restore Arduino ATmega328P boards from Debian's arduino-core-avr: what a bench PC
# has after `apt install bootmedic`.
step $bin rules check config/rules.toml
echo
echo "# The agent on a virtual bench with the shipped rules (config/virtual-bench/arduino.toml): two factory"
echo "# ATmega328P boards in parallel, the same board again, a chip with no rule, a cable that comes loose."
since=$(date '+%Y-%m-%d %H:%M:%S')
step $bin agent --config config/rules.toml --backup-dir "$work/arduino-backups" \
  --virtual-bench config/virtual-bench/arduino.toml 2>"$work/agent.log"
show_journal "$since"
step $bin rehearse --rules config/rules.toml --backup-dir "$work/backups" --programmer stk500v1 --part atmega328p

if ! firmware=$(scripts/firmware-dir.sh 2>/dev/null); then
  echo
  echo "# Left out: the guide's boards whose bootloaders no Debian package ships (Atmel DFU, Caterina for the"
  echo "# Pro Micro and the Arduino Micro, BootloadHID for PS2AVRGB boards, STM32duino for the Bluepill). No"
  echo "# folder of those files is here (../shared/firmware, or BOOTMEDIC_FIRMWARE_DIR); rules check names"
  echo "# each missing file, its pinned sha256 and where it comes from:"
  step $bin rules check config/examples/guide-rules.toml || true
  step $bin fuses decode atmega328p --low 0xFF --high 0xDA --extended 0xFD
  exit 0
fi

rules=(--rules config/examples/guide-rules.toml --firmware-dir "$firmware" --backup-dir "$work/backups")
step $bin rules check config/examples/guide-rules.toml --firmware-dir "$firmware"
echo
echo "# The guide's boards on a virtual bench (config/virtual-bench/demo.toml): two programmers in parallel, a"
echo "# bricked Pro Micro, a healthy one, a chip without a rule, a read-protected Bluepill, a cable that comes loose."
since=$(date '+%Y-%m-%d %H:%M:%S')
step $bin agent --config config/examples/guide-rules.toml --firmware-dir "$firmware" --backup-dir "$work/agent-backups" \
  --virtual-bench config/virtual-bench/demo.toml 2>"$work/agent.log"
show_journal "$since"
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
