#!/usr/bin/env bash
# Restore benchmarks on the timing-modelled simulators: simulated seconds (what the hardware would take)
# and USB transfers per programmer and payload against the model's floor, avrdude on the serial
# simulators, and the agent's own costs (real time). Writes bench/results.md (and the summary table as bench/results.json) and prints it.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.build/release/bootmedic
[ -x "$bin" ] || bin=.build/debug/bootmedic
firmware=$(scripts/firmware-dir.sh)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rules=(--rules config/examples/guide-rules.toml --firmware-dir "$firmware" --backup-dir "$work/backups")

# random_hex FILE BYTES ADDRESS: random bytes at ADDRESS as Intel HEX (Debian's python3-intelhex).
random_hex() {
  /usr/bin/python3 - "$@" <<'PY'
import os, sys
from intelhex import IntelHex
image = IntelHex()
image.frombytes(os.urandom(int(sys.argv[2])), offset=int(sys.argv[3], 0))
image.write_hex_file(sys.argv[1])
PY
}

# The floor of a USB ISP restore under the same timing model: every byte read or written crosses the
# ISP link as one 4-byte instruction (32 SCK cycles at the SCK the run used) and the low-speed USB bus
# once (8-byte packets of 107 µs: LowSpeedUSB.swift), plus the chip's own waits: the 20 ms after RESET
# before Programming Enable (step 2 of the datasheets' serial programming algorithm), tWD_ERASE, tWD_FLASH
# per page written, tWD_FUSE per fuse written (`bootmedic parts --json`). What must be read: the whole
# flash and EEPROM for the backup (the health check's pages are reused), and the image's pages again to
# verify (blank pages of the image are verified but not written after the erase); a healthy board, only
# the bootloader region. A job that raised the clock first (raise_clock) is modelled at the SCK it ran
# at after the raise, plus the raise's own fuse write and second 20 ms to Programming Enable. Frame
# scheduling (a control transfer starts on a 1 ms frame) is left out, so the floor is strictly below
# anything the bus allows.
"$bin" parts --json > "$work/parts.json"
row() {
  local programmer=$1 label=$2 rule=$3 part=$4; shift 4
  local json
  json=$("$bin" rehearse "${rules[@]}" --programmer "$programmer" --part "$part" --rule "$rule" --json "$@" || true)
  python3 - "$programmer" "$label" "$json" "$work/parts.json" "$work/summary.tsv" <<'PY'
import json, sys
programmer, label, raw, parts = sys.argv[1], sys.argv[2], sys.argv[3], json.load(open(sys.argv[4]))
r = json.loads(raw)
if r["outcome"] not in ("restored", "healthy"):
    # A refusal is a result too (the USBtinyISP and a part above 64 KiB): exit status and reason.
    print(f"| {programmer} | {label} | exit {r['exitCode']} at {r['failedStep']}: {r['error']} | – | – | – | {r['simulation']['usbTransfers']} | – | – | – | – | {r['sck']} |")
    sys.exit(0)
steps = {s["step"]: s for s in r["steps"]}
seconds = lambda name: steps.get(name, {}).get("seconds", 0)
count = lambda name: steps.get(name, {}).get("bytes", 0)
value, unit = r["sck"].split()
sck = float(value) * {"Hz": 1, "kHz": 1e3, "MHz": 1e6}[unit]
per_byte = 32 / sck + 107e-6 / 8
part = next(p for p in parts if p["family"] == "avr" and p["id"] == r["part"])
wait = {k: v / 1e6 for k, v in part["waitMicroseconds"].items()}
enable = 0.020
if r["outcome"] == "healthy":
    floor = enable + count("health-check") * per_byte
else:
    written = count("write-flash")
    floor = enable + (count("backup") + written + count("verify-flash")) * per_byte + wait["chipErase"] \
        + written // part["flashPageSize"] * wait["flashPage"] + count("write-fuses") * wait["fuse"]
    if "raise-clock" in steps:
        floor += wait["fuse"] + enable
total = r["simulation"]["seconds"]
with open(sys.argv[5], "a") as summary:
    summary.write(f"{programmer}\t{label}\t{r['outcome']}\t{total:.6f}\t{floor:.6f}\t\n")
print(f"| {programmer} | {label} | {r['outcome']} | {total:.2f} | {floor:.2f} | {total / floor:.2f} | {r['simulation']['usbTransfers']} | "
      f"{seconds('raise-clock'):.2f} | {seconds('backup'):.2f} | {seconds('write-flash'):.2f} | {seconds('verify-flash'):.2f} | {r.get('sck') or ''} |")
PY
}

{
  echo "| programmer | payload | outcome | simulated s | floor s | ratio | USB transfers | raise-clock s | backup s | write s | verify s | SCK |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
  for p in usbasp usbtiny; do
    row $p "Caterina 4 KiB, factory chip (2 MHz)" pro-micro-5v atmega32u4
    "$bin" rehearse "${rules[@]}" --programmer $p --part atmega32u4 --rule pro-micro-5v --dump "$work/healthy-$p" >/dev/null
    row $p "Caterina 4 KiB, healthy board" pro-micro-5v atmega32u4 --initial-flash "$work/healthy-$p/flash.bin" --initial-fuses FF:D8:FB
    row $p "Caterina 4 KiB, 16 MHz chip" pro-micro-5v atmega32u4 --initial-fuses FF:D8:FB
    row $p "Caterina-Micro 32 KiB, factory chip" arduino-micro atmega32u4
  done
  # A part above 64 KiB: a synthetic 8 KiB bootloader at the top of an AT90USB1286 (the USBtinyISP
  # cannot address it and is refused before anything is erased; the serial programmers below, too).
  random_hex "$work/dfu128.hex" 8192 0x1E000
  cat > "$work/big.toml" <<TOML
[[rule]]
name = "at90usb1286-8k"
match = { part = "at90usb1286" }
bootloader = "$work/dfu128.hex"
fuses = { low = 0x5E, high = 0x99, extended = 0xF3 }
clock = "crystal"
clock_div8 = true
TOML
  saved=("${rules[@]}")
  rules=(--rules "$work/big.toml" --backup-dir "$work/backups")
  row usbasp "8 KiB at 0x1E000, factory AT90USB1286 (128 KiB)" at90usb1286-8k at90usb1286
  row usbtiny "8 KiB at 0x1E000, factory AT90USB1286 (128 KiB)" at90usb1286-8k at90usb1286
  # Above 128 KiB: Debian's stk500v2 bootloader for the Mega 2560 at 0x3E000, with the Load Extended
  # Address instruction; the whole 256 KiB is backed up at the factory chip's 1 MHz.
  mega=/usr/share/arduino/hardware/arduino/avr/bootloaders/stk500v2/stk500boot_v2_mega2560.hex
  if [ -f "$mega" ]; then
    cat > "$work/mega.toml" <<TOML
[[rule]]
name = "mega2560"
match = { part = "atmega2560" }
bootloader = "$mega"
fuses = { low = 0xFF, high = 0xD8, extended = 0xFD }
clock = "crystal"
clock_div8 = false
TOML
    rules=(--rules "$work/mega.toml" --backup-dir "$work/backups")
    row usbasp "stk500v2 8 KiB at 0x3E000, factory ATmega2560 (256 KiB)" mega2560 atmega2560
  fi
  rules=("${saved[@]}")
} > "$work/table.md"

# Serial programmers: bootmedic and avrdude 7.1 driving the same simulator (simulated line and chip time).
avrdude_seconds() {  # programmer kind, part, HEX file, avrdude -c arguments...
  local kind=$1 part=$2 hex=$3; shift 3
  # The rule's fuses, as avrdude writes them (it writes them whatever the chip holds).
  local fuses=(-p m32u4 -U lfuse:w:0xFF:m -U hfuse:w:0xD8:m -U efuse:w:0xCB:m)
  [ "$part" = at90usb1286 ] && fuses=(-p usb1286 -U lfuse:w:0x5E:m -U hfuse:w:0x99:m -U efuse:w:0xF3:m)
  avrdude_on_simulator --programmer "$kind" --part "$part" -- "$@" -U "flash:w:$hex:i" "${fuses[@]}"
}
# avrdude_on_simulator SIMULATE-ARGUMENTS... -- AVRDUDE-ARGUMENTS...: avrdude against `bootmedic simulate`
# (-P its pseudo-terminal); prints the simulated seconds of the session.
avrdude_on_simulator() {
  local simulate=()
  while [ "$1" != -- ]; do simulate+=("$1"); shift; done
  shift
  rm -rf "$work/state" "$work/fifo"
  mkfifo "$work/fifo"
  # The simulator serves until its standard input closes: a FIFO whose writer is this shell's fd 4.
  "$bin" simulate "${simulate[@]}" --state "$work/state" < "$work/fifo" > "$work/sim.out" 2>/dev/null &
  local sim=$!
  exec 4> "$work/fifo"
  for _ in $(seq 100); do [ -s "$work/sim.out" ] && break; sleep 0.05; done
  avrdude "$@" -P "$(head -1 "$work/sim.out")" >/dev/null 2>&1
  exec 4>&-
  wait $sim 2>/dev/null || true
  python3 -c "import json;print('%.2f' % json.load(open('$work/state/session.json'))['seconds'])"
}
# The serial simulators advance their chip by the host's real waits between messages, so runs differ a
# little: each figure is the median of RUNS runs (default 3).
runs=${RUNS:-3}
median() {  # count, command...
  local n=$1; shift
  for _ in $(seq "$n"); do "$@"; done | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
# The floor of a serial job without backup (the bytes written and read back, the fuses written, one
# chip erase) in the simulators' own model, which carries a message over the line and then runs its SPI:
# - stk500v1, ArduinoISP at 19200 baud 8N1 (520.8 µs a byte), SPI fixed at 125 kHz by the sketch
#   (256 µs an instruction), delay(PTIME) = 30 ms after each page commit, 70 ms to enter programming;
# - avrisp, the same sketch behind USB CDC: the line costs next to nothing, SPI and the waits stay;
# - buspirate at 115200 baud (86.8 µs a byte), SPI at the speed the run used (250 kHz, the fastest Bus
#   Pirate speed under a 2 MHz chip's 500 kHz; 2.6 MHz once the clock is raised): a byte written sends its
#   whole 4-byte instruction, a byte read back costs one byte (the AVR bulk-read extension); tWD_FLASH
#   (4.5 ms) per page; a raised clock adds its fuse write and 20 ms to Programming Enable.
# Chip erase 9 ms and 9 ms a fuse written (tWD_ERASE, tWD_FUSE of the ATmega32U4 and AT90USB1286) for all; the
# Bus Pirate also the datasheets' 20 ms from RESET to Programming Enable (the sketch's 70 ms include it).
serial_floor() {  # programmer kind, bytes written (whole pages), bytes verified, page size, fuses written, SCK Hz, raised (0/1)
  python3 - "$@" <<'PY'
import sys
kind, data, verified, page, fuses, sck, raised = sys.argv[1], *map(int, sys.argv[2:5]), int(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7])
pages, fixed = data // page, 0.009 + fuses * 0.009
if kind == "stk500v1":
    floor = (data + verified) * (10 / 19200 + 32 / 125e3) + pages * 0.030 + 0.070
elif kind == "avrisp":
    floor = (data + verified) * (32 / 125e3) + pages * 0.030 + 0.070
else:
    floor = data * (4 * 10 / 115200 + 32 / sck) + verified * (10 / 115200 + 32 / sck) + pages * 0.0045 + 0.020 + raised * (0.009 + 0.020)
print("%.2f" % (floor + fixed))
PY
}
bootmedic_run() {  # programmer kind, rules file, rule, part: prints simulated seconds, flash bytes written and verified,
                  # fuse bytes written, the SCK in Hz and whether the clock was raised
  "$bin" rehearse --rules "$2" --firmware-dir "$firmware" --backup-dir "$work/backups" --programmer "$1" --part "$4" \
    --rule "$3" --json | python3 -c "
import json, re, sys
r = json.load(sys.stdin)
moved = lambda step: sum(s['bytes'] for s in r['steps'] if s['step'] == step and r['outcome'] == 'restored')
fuses = next((s for s in r['steps'] if s['step'] == 'write-fuses'), {})
value, unit = re.match(r'([0-9.]+) (Hz|kHz|MHz)', r['sck']).groups()
sck = float(value) * {'Hz': 1, 'kHz': 1e3, 'MHz': 1e6}[unit]
raised = int(any(s['step'] == 'raise-clock' for s in r['steps']))
print('%.2f %d %d %d %d %d' % (r['simulation']['seconds'], moved('write-flash'), moved('verify-flash'),
      0 if 'already' in fuses.get('detail', '') else fuses.get('bytes', 0), sck, raised))"
}
bootmedic_seconds() { bootmedic_run "$@" | cut -d' ' -f1; }
{
  echo
  echo "Serial programmers, bootloader and fuses on a factory ATmega32U4 or AT90USB1286 (2 MHz), simulated seconds (UART at the client's baud rate; USB CDC frames for avrisp), median of $runs runs:"
  echo
  echo "| programmer | payload | avrdude 7.1 | bootmedic, no backup | bootmedic/avrdude | floor | bootmedic/floor | bootmedic with backup |"
  echo "|---|---|---|---|---|---|---|---|"
  for spec in "stk500v1:-c stk500v1 -b 19200" "avrisp:-c avrisp -b 19200" "buspirate:-c buspirate"; do
    kind=${spec%%:*}; args=${spec#*:}
    for payload in "config/examples/guide-rules.toml:pro-micro-5v:atmega32u4:$firmware/Caterina-promicro16.hex:Caterina 4 KiB" \
                   "config/examples/guide-rules.toml:arduino-micro:atmega32u4:$firmware/Caterina-Micro.hex:Caterina-Micro 32 KiB" \
                   "$work/big.toml:at90usb1286-8k:at90usb1286:$work/dfu128.hex:8 KiB at 0x1E000, AT90USB1286 (128 KiB)"; do
      IFS=: read -r rules_file rule part hex label <<< "$payload"
      sed 's/^\[\[rule\]\]$/[[rule]]\nbackup = false\nrestore_eeprom = false/' "$rules_file" > "$work/nobackup.toml"
      a=$(median $runs avrdude_seconds "$kind" "$part" "$hex" $args)
      b=$(median $runs bootmedic_seconds "$kind" "$work/nobackup.toml" "$rule" "$part")
      c=$(median $runs bootmedic_seconds "$kind" "$rules_file" "$rule" "$part")
      read -r _ written verified fuses sck raised <<< "$(bootmedic_run "$kind" "$work/nobackup.toml" "$rule" "$part")"
      f=$(serial_floor "$kind" "$written" "$verified" "$([ "$part" = at90usb1286 ] && echo 256 || echo 128)" "$fuses" "$sck" "$raised")
      echo "| $kind | $label | $a | $b | $(python3 -c "print('%.2f' % ($b/$a))") | $f | $(python3 -c "print('%.2f' % ($b/$f))") | $c |"
      printf '%s\t%s, no backup\trestored\t%s\t%s\t%s\n' "$kind" "$label" "$b" "$f" "$a" >> "$work/summary.tsv"
    done
  done
} >> "$work/table.md"
# ST-Link: erase + write + verify of the 7 KiB STM32duino bootloader and of a 64 KiB image on a Bluepill
# (ST's, and a GD32F103 with its word programming and slower erases) and a Black Pill (STM32F411,
# sectors), against the floor of the same model: each erase unit's time (per KiB), each programming
# access (a half-word, or a word), the data over full-speed bulk both ways (64-byte packets, 50 µs), and
# the verify read over SWD at 4 MHz (46 clocks a word).
python3 -c "import os,sys; sys.stdout.buffer.write(os.urandom(65536))" > "$work/image64k.bin"
cat > "$work/stm32.toml" <<TOML
[[rule]]
name = "bluepill"
match = { part = ["stm32f103", "gd32f103", "stm32f411"] }
bootloader = "$firmware/generic_boot20_pc13.bin"
[[rule]]
name = "full-64k"
match = { part = ["stm32f103", "gd32f103", "stm32f411"] }
bootloader = "$work/image64k.bin"
TOML
{
  echo
  echo "ST-Link/V2: erase, write and verify (simulated seconds) against the model's floor:"
  echo
  echo "| chip | image | erase s | write s | verify s | total s | floor s | ratio |"
  echo "|---|---|---|---|---|---|---|---|"
  # part: erase seconds per KiB, programming width (bytes), seconds per access (the simulators' typical figures)
  for chip in "stm32f103:0.020:2:52.5e-6" "gd32f103:0.050:4:40e-6" "stm32f411:0.016:4:16e-6"; do
    IFS=: read -r part per_kib width access <<< "$chip"
    for spec in "bluepill:STM32duino 7 KiB" "full-64k:64 KiB image"; do
      rule=${spec%%:*}; label=${spec#*:}
      "$bin" rehearse --rules "$work/stm32.toml" --backup-dir "$work/backups" --programmer stlink --part "$part" --rule "$rule" --json \
        | python3 -c "
import json, sys
r = json.load(sys.stdin)
steps = {s['step']: s for s in r['steps']}
size = steps['write-flash']['bytes']; erased = steps['erase']['bytes']
floor = erased / 1024 * $per_kib + (size // $width) * $access + 2 * ((size + 63) // 64) * 50e-6 + (size // 4) * 46 / 4e6
total = steps['erase']['seconds'] + steps['write-flash']['seconds'] + steps['verify-flash']['seconds']
print('| $part | $label | %.3f | %.3f | %.3f | %.3f | %.3f | %.2f |' % (steps['erase']['seconds'], steps['write-flash']['seconds'], steps['verify-flash']['seconds'], total, floor, total / floor))
open('$work/summary.tsv', 'a').write('stlink\t$part: $label, erase+write+verify\t%s\t%.3f\t%.3f\t\n' % (r['outcome'], total, floor))
"
    done
  done
} >> "$work/table.md"

# Through a bootloader: a 12 KiB sketch into a Pro Micro waiting in Caterina (AVR109 over USB CDC), by
# `bootmedic flash` (rehearse --bootloader, no backup) and by avrdude -c avr109 on the same simulator,
# median of RUNS runs each. The floor in the simulator's model: the application section's 224 page
# erases at tWD_FLASH (4.5 ms), each block's page erased and written again (9 ms), and one 1 ms USB frame
# for each block written and each block read back.
random_hex "$work/sketch.hex" 12000 0
cat > "$work/sketch.toml" <<TOML
[[rule]]
name = "sketch"
match = { part = "atmega32u4" }
bootloader = "$firmware/Caterina-promicro16.hex"
application = "$work/sketch.hex"
fuses = { low = 0xFF, high = 0xD8, extended = 0xCB }
clock = "crystal"
clock_div8 = false
backup = false
restore_eeprom = false
TOML
caterina_bootmedic() {
  "$bin" rehearse --rules "$work/sketch.toml" --backup-dir "$work/backups" --bootloader caterina --part atmega32u4 --json \
    | python3 -c "import json,sys; print('%.2f' % json.load(sys.stdin)['simulation']['seconds'])"
}
caterina_avrdude() {
  avrdude_on_simulator --bootloader caterina --part atmega32u4 --initial-flash "$firmware/Caterina-promicro16.hex" --initial-fuses FF:D8:CB \
    -- -c avr109 -b 57600 -p m32u4 -U "flash:w:$work/sketch.hex:i"
}
{
  a=$(median "$runs" caterina_avrdude); b=$(median "$runs" caterina_bootmedic)
  pages=$(( (12000 + 127) / 128 ))
  f=$(python3 -c "print('%.2f' % (224 * 0.0045 + $pages * 0.009 + 2 * $pages * 0.001))")
  echo
  echo "Through Caterina (AVR109 over USB CDC), a 12 KiB sketch, no backup (simulated seconds, median of $runs):"
  echo
  echo "| bootloader | payload | avrdude -c avr109 s | bootmedic s | bootmedic/avrdude | floor s | ratio |"
  echo "|---|---|---|---|---|---|---|"
  echo "| caterina | 12 KiB sketch | $a | $b | $(python3 -c "print('%.2f' % ($b/$a))") | $f | $(python3 -c "print('%.2f' % ($b/$f))") |"
  printf 'caterina\t12 KiB sketch through the bootloader, no backup\trestored\t%s\t%s\t%s\n' "$b" "$f" "$a" >> "$work/summary.tsv"
} >> "$work/table.md"

# Through Atmel DFU: the same sketch into a keyboard's ATmega32U4 waiting in QMK's Atmel DFU bootloader
# (DFU 1.1 + FLIP over full-speed control transfers), by `bootmedic flash` (rehearse --bootloader
# atmel-dfu, no backup). dfu-programmer needs a USB bus: it runs against the same simulator as a gadget
# in `make vmtest` part 10, which prints both wall times. The floor in the model: the 224 page erases,
# each written page erased and programmed (9 ms), and each 1 KiB program or read-back command's frame and
# 16 full-speed packets (about 1.9 ms).
cat > "$work/keyboard.toml" <<TOML
[[rule]]
name = "keyboard"
match = { part = "atmega32u4" }
bootloader = "$firmware/bootloader_atmega32u4_1_0_0.hex"
application = "$work/sketch.hex"
fuses = { low = 0x5E, high = 0x99, extended = 0xF3 }
clock = "crystal"
clock_div8 = false
backup = false
restore_eeprom = false
TOML
atmel_dfu_bootmedic() {
  "$bin" rehearse --rules "$work/keyboard.toml" --backup-dir "$work/backups" --bootloader atmel-dfu --part atmega32u4 --json \
    | python3 -c "import json,sys; print('%.2f' % json.load(sys.stdin)['simulation']['seconds'])"
}
{
  b=$(median "$runs" atmel_dfu_bootmedic)
  pages=$(( (12000 + 127) / 128 )) blocks=$(( (12000 + 1023) / 1024 ))
  f=$(python3 -c "print('%.2f' % (224 * 0.0045 + $pages * 0.009 + 2 * $blocks * 0.0019))")
  echo
  echo "Through Atmel DFU (DFU 1.1 + FLIP), the same sketch, no backup (simulated seconds, median of $runs; dfu-programmer: vmtest part 10):"
  echo
  echo "| bootloader | payload | bootmedic s | floor s | ratio |"
  echo "|---|---|---|---|---|"
  echo "| atmel-dfu | 12 KiB sketch | $b | $f | $(python3 -c "print('%.2f' % ($b/$f))") |"
  printf 'atmel-dfu\t12 KiB sketch through the bootloader, no backup\trestored\t%s\t%s\t\n' "$b" "$f" >> "$work/summary.tsv"
} >> "$work/table.md"

# The other bootloaders, each with its own simulator (rehearse --bootloader KIND, no backup): the same
# 12 KiB sketch into a Teensy 2.0 (HalfKay), a V-USB ATmega328P (USBaspLoader) and a PS2AVRGB's ATmega32A
# (BootloadHID); a 20000-byte binary into a Bluepill (STM32duino, at 0x08002000) and a Black Pill's F411
# (ST's DfuSe). The floor is the chip's own programming time in the model (SPM's erase and write, 9 ms a
# page; the F103's 20 ms page erase and 52.5 us half-words; the F411's 16 us words), plus the read-back
# at the bus's bit rate where the bootloader reads. The peers (teensy_loader_cli, avrdude -c usbasp,
# dfu-util) need a USB bus: vmtest parts 12, 13, 15 and 16 time them against the same simulators.
python3 -c "import random; open('$work/sketch.bin', 'wb').write(bytes(random.Random(15).randrange(256) for _ in range(20000)))"
other_bootloader() {  # kind part rules [--initial-flash FILE] [--initial-fuses F]
  kind=$1 part=$2 rules=$3; shift 3
  "$bin" rehearse --rules "$rules" --backup-dir "$work/backups" --bootloader "$kind" --part "$part" --json "$@" \
    | python3 -c "import json,sys; print('%.2f' % json.load(sys.stdin)['simulation']['seconds'])"
}
rule_file() {  # path part application [more lines]
  printf '[[rule]]\nname = "sketch"\nmatch = { part = "%s" }\napplication = "%s"\nbackup = false\n%s\n' "$2" "$3" "${4:-}" > "$1"
}
rule_file "$work/teensy.toml" atmega32u4 "$work/sketch.hex"
rule_file "$work/v-usb.toml" atmega328p "$work/sketch.hex"
rule_file "$work/ps2avrgb.toml" atmega32a "$work/sketch.hex"
rule_file "$work/bluepill.toml" stm32f103 "$work/sketch.bin" "application_address = 0x08002000"
rule_file "$work/blackpill.toml" stm32f411 "$work/sketch.bin"
{
  echo
  echo "The other bootloaders, no backup (simulated seconds, median of $runs; the peers' wall times: vmtest):"
  echo
  echo "| bootloader | board | payload | bootmedic s | floor s | ratio |"
  echo "|---|---|---|---|---|---|"
  pages=$(( (12000 + 127) / 128 ))
  while IFS='|' read -r kind part rules board payload floor extra; do
    b=$(median "$runs" other_bootloader "$kind" "$part" "$rules" $extra)
    echo "| $kind | $board | $payload | $b | $floor | $(python3 -c "print('%.2f' % ($b/$floor))") |"
    printf '%s\t%s through the bootloader, no backup\trestored\t%s\t%s\t\n' "$kind" "$payload" "$b" "$floor" >> "$work/summary.tsv"
  done <<ROWS
halfkay|atmega32u4|$work/teensy.toml|Teensy 2.0|12 KiB sketch|$(python3 -c "print('%.2f' % ((252 + $pages) * 0.009))")|--initial-fuses 5F:DF:F4
usbasploader|atmega328p|$work/v-usb.toml|V-USB ATmega328P|12 KiB sketch|$(python3 -c "print('%.2f' % ((240 + $pages) * 0.009 + 12000 * 8 / 1.5e6))")|--initial-flash /usr/share/arduino/hardware/arduino/avr/bootloaders/atmega/ATmegaBOOT_168_atmega328.hex --initial-fuses FF:DA:FD
bootloadhid|atmega32a|$work/ps2avrgb.toml|PS2AVRGB ATmega32A|12 KiB sketch|$(python3 -c "print('%.2f' % (224 * 0.009))")|--initial-flash $firmware/bootloader_ps2avrgb_bootloadhid_1.0.1.hex --initial-fuses 0F:D0
stm32duino|stm32f103|$work/bluepill.toml|Bluepill STM32F103C8|20000-byte binary|$(python3 -c "print('%.2f' % (20 * (0.020 + 512 * 52.5e-6) + 20000 * 8 / 12e6))")|--initial-flash $firmware/generic_boot20_pc13.bin
stm32-dfu|stm32f411|$work/blackpill.toml|Black Pill STM32F411CE|20000-byte binary|$(python3 -c "print('%.2f' % (5000 * 16e-6 + 2 * 20000 * 8 / 12e6))")|
ROWS
} >> "$work/table.md"

# Agent costs (wall time on this machine, not simulated): one round of the load test, then the idle agent.
{
  echo
  echo "Agent on the virtual bench (\`scripts/load.sh 1\`, real time on this machine):"
  echo
  IDLE=${IDLE:-20} scripts/load.sh 1 | sed -n '/^journal:/,$p' | sed 's/^/- /'
} >> "$work/table.md"

mkdir -p bench
{
  echo "# bootmedic restore benchmark (simulated hardware time)"
  echo
  echo "Machine: $(uname -m), $(nproc) cores; $(date -u +%Y-%m-%d). Times are the simulators' timing model, not wall time."
  echo
  echo "| programmer | payload | bootmedic s | floor s | ratio | avrdude 7.1 s | bootmedic/avrdude |"
  echo "|---|---|---|---|---|---|---|"
  python3 - "$work/summary.tsv" bench/results.json <<'PY'
import json, sys
rows = []
for line in open(sys.argv[1]):
    programmer, payload, outcome, ours, floor, avrdude = line.rstrip("\n").split("\t")
    seconds = lambda v: "%.3f" % float(v) if float(v) < 1 else "%.2f" % float(v)
    vs = "%.2f" % (float(ours) / float(avrdude)) if avrdude else "–"
    print(f"| {programmer} | {payload} | {seconds(ours)} | {seconds(floor)} | {float(ours) / float(floor):.2f} | {avrdude or '–'} | {vs} |")
    rows.append({"programmer": programmer, "payload": payload, "outcome": outcome, "seconds": round(float(ours), 3),
                 "floor_seconds": round(float(floor), 3), "ratio": round(float(ours) / float(floor), 3),
                 "avrdude_seconds": float(avrdude) if avrdude else None})
with open(sys.argv[2], "w") as out:
    json.dump(rows, out, indent=2)
    out.write("\n")
PY
  echo
  echo "Details:"
  echo
  cat "$work/table.md"
} > bench/results.md
cat bench/results.md
