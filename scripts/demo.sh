#!/usr/bin/env bash
# The demo: bootmedic proving a rules file, the bench agent running a morning at a virtual bench
# (simulated USBasp, USBtinyISP and ST-Link with boards coming and going) and journaling every step, then
# single restores on simulated programmers and chips (the same pipeline and drivers a bench runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.build/debug/bootmedic
firmware=$(scripts/firmware-dir.sh)
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rules=(--rules config/rules.toml --firmware-dir "$firmware" --backup-dir "$work/backups")

step $bin rules check config/rules.toml --firmware-dir "$firmware"
echo
echo "# The agent on a virtual bench (config/virtual-bench/demo.toml): two programmers in parallel, a bricked"
echo "# Pro Micro, a healthy one, a chip without a rule, a read-protected Bluepill, a cable that comes loose."
since=$(date '+%Y-%m-%d %H:%M:%S')
step $bin agent --config config/rules.toml --firmware-dir "$firmware" --backup-dir "$work/agent-backups" \
  --virtual-bench config/virtual-bench/demo.toml 2>"$work/agent.log"
if [ -S /run/systemd/journal/socket ]; then
  echo
  echo "# What it journaled (journalctl SYSLOG_IDENTIFIER=bootmedic, steps left out):"
  journalctl --no-pager -o short --since "$since" SYSLOG_IDENTIFIER=bootmedic -p 6 | grep -v "^-- "
  step $bin status
else
  echo "# (no journald running: the agent's console log)"
  cat "$work/agent.log"
fi
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
