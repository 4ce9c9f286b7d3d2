#!/bin/sh
# Runs inside the vmtest guest as vmtest.service, under systemd as PID 1, in the host's filesystem under
# a throwaway overlay, on a real kernel USB stack: bootmedic installed as an administrator installs it,
# simulated programmers presented as USB gadgets on dummy_hcd's UDCs, the CLI and then
# bootmedic.service driving them. Everything it finds goes to /vmtest-out for the host to check.
set -u
out=/vmtest-out
repo=$(cd "$(dirname "$0")/../.." && pwd)
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
t_start=$(now_ms)
step() { echo "$(( $(now_ms) - t_start )) $1" >> $out/steps.txt; }
# VMTEST_ONLY="N ..." runs only those parts (and the install), for working on one part; part 7 builds
# on what part 6 set up and journalled ("6 7").
part() { [ -z "${VMTEST_ONLY:-}" ] || case " $VMTEST_ONLY " in *" $1 "*) true ;; *) false ;; esac; }

# bootmedic installed the way a workshop does it (into the overlay only): the package from `make deb`
# with apt, which starts the service with the shipped rules.
deb=$(ls "$repo"/dist/bootmedic_*.deb | head -1)
# man-db's trigger would index every manual page of the host over 9p (minutes under TCG); a bench PC
# does it on its own disk in a second.
rm -f /var/lib/man-db/auto-update
step "installing"
# Unloaded this takes about 40 s; with two compilers beside the guest on the same two cores, over 180.
# Each line of apt's output is stamped with the guest's clock: where a slow install spends its time.
{ DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y "$deb"; echo $? > $out/install-status.txt; } 2>&1 |
  while IFS= read -r line; do echo "$(( $(now_ms) - t_start )) $line"; done > $out/install.log
bin=/usr/bin/bootmedic
guide="$repo/config/examples/guide-rules.toml"
step "installed"

udc0=$(ls /sys/class/udc | sed -n 1p)   # the programmers' socket
udc1=$(ls /sys/class/udc | sed -n 2p)   # the restored board's own USB socket
ls /sys/class/udc > $out/udc.txt

# The serial number of gadget NAME: 24 characters, as an ST-Link's (st-flash skips other lengths).
serial_of() { printf "VMTEST-%s00000000000000000" "$1" | cut -c1-24; }
# gadget NAME VID PID MANUFACTURER PRODUCT [FUNCTION]: a configfs gadget whose one function is
# FunctionFS, mounted at /dev/ffs-NAME for bootmedic's simulator to serve (or the kernel's FUNCTION).
gadget() {
  g=/sys/kernel/config/usb_gadget/$1
  f=${6:-ffs.$1}
  mkdir -p $g/strings/0x409 $g/configs/c.1 $g/functions/$f
  echo "$2" > $g/idVendor; echo "$3" > $g/idProduct
  [ "$f" = "ffs.$1" ] && echo 0xff > $g/bDeviceClass   # vendor-specific, as V-USB programmers are
  echo "$4" > $g/strings/0x409/manufacturer; echo "$5" > $g/strings/0x409/product
  serial_of $1 > $g/strings/0x409/serialnumber
  ln -s $g/functions/$f $g/configs/c.1/
  [ "$f" = "ffs.$1" ] && mkdir -p /dev/ffs-$1 && mount -t functionfs $1 /dev/ffs-$1
}
# serve NAME KIND STATE [WHERE...]: bootmedic's simulator (the one the in-process tests use) behind
# the gadget (FunctionFS at /dev/ffs-NAME unless WHERE says otherwise), wrapping a factory ATmega32U4;
# its stdin is fd 4 (closing it ends the simulator, which then writes the chip's state to STATE), its
# stdout fd 5 ("ready" or the tty it serves, then "writing" at the first flash page).
serve() {
  name=$1 kind=$2 state=$3; shift 3
  rm -f /tmp/sim-in /tmp/sim-out; mkfifo /tmp/sim-in /tmp/sim-out
  # KIND is a programmer, or bootloader:NAME for a board waiting in that bootloader.
  what="--programmer $kind"; [ "${kind#bootloader:}" != "$kind" ] && what="--bootloader ${kind#bootloader:}"
  "$bin" simulate $what --part ${simpart:-atmega32u4} --state $out/$state ${@:---functionfs /dev/ffs-$name} \
    < /tmp/sim-in > /tmp/sim-out 2> $out/$state.log &
  sim=$!
  exec 4> /tmp/sim-in 5< /tmp/sim-out
  ready=$(read_line 60 "serve-$name")
}
unserve() { exec 4>&- 5<&-; watch_over $sim 60 "unserve-$name"; }
# Every wait has a bound. diagnose NAME: what each client and simulator process and thread is waiting
# on (wchan and kernel stack), into $out/hang-NAME.txt, and NAME into $out/hangs.txt (a check fails).
diagnose() {
  { date; ps -eo pid,ppid,stat,wchan:32,etimes,args
    for p in $(pgrep -f "bootmedic|avrdude|st-flash"); do
      echo "== $p: $(tr '\0' ' ' < /proc/$p/cmdline 2>/dev/null)"
      for t in /proc/$p/task/*; do echo "-- $(cat $t/comm 2>/dev/null) wchan=$(cat $t/wchan 2>/dev/null)"; cat $t/stack 2>/dev/null; done
    done
    journalctl -k -n 30 --no-pager
  } > $out/hang-$1.txt 2>&1
  echo "$1" >> $out/hangs.txt
}
# read_line SECONDS NAME: one line from the simulator's stdout (fd 5) within SECONDS, or a diagnosis.
# (dash's read has no timeout; a shell's read takes one byte at a time, so nothing after the line is lost.)
read_line() { timeout "$1" sh -c 'read -r line <&5 && echo "$line"' || { diagnose "$2"; return 1; }; }
# watch_over PID SECONDS NAME: waits for PID; past SECONDS it is diagnosed and killed. The watchdog (and
# its sleep, which it takes down with it) holds no end of the simulator's pipes: a simulator on a tty ends
# when its stdin closes, and a stray holder of that pipe would keep it serving.
watch_over() {
  ( trap 'kill $nap 2>/dev/null; exit 0' TERM
    sleep $2 & nap=$!
    wait $nap && { diagnose "$3"; kill -9 $1; } ) 4>&- 5<&- 2>/dev/null &
  watchdog=$!
  wait $1; watched_status=$?
  kill $watchdog 2>/dev/null; wait $watchdog 2>/dev/null
  return $watched_status
}
# bounded SECONDS NAME COMMAND...: runs COMMAND (holding no end of the simulator's pipes) under watch_over.
bounded() {
  limit=$1 label=$2; shift 2
  "$@" 4>&- 5<&- &
  watch_over $! $limit "$label"
}
# plug NAME UDC / unplug NAME: bind the gadget to a UDC and wait (bounded) until the host side has
# enumerated it and udev has finished with it.
plug() {
  echo "$2" > /sys/kernel/config/usb_gadget/$1/UDC
  for _ in $(seq 200); do
    ls /sys/bus/usb/devices/*/serial 2>/dev/null | xargs grep -lx "$(serial_of $1)" >/dev/null 2>&1 && break
    sleep 0.05
  done
  udevadm settle --timeout=20
}
unplug() { echo "" > /sys/kernel/config/usb_gadget/$1/UDC 2>/dev/null; udevadm settle --timeout=20; }
# The sysfs folder of the gadget NAME as the host sees it.
hostdev() { dirname "$(ls /sys/bus/usb/devices/*/serial | xargs grep -lx "$(serial_of $1)" | head -1)"; }
# The journal from here on: wait_count and the dumps read only what comes after the last mark.
cursor=
mark_journal() { cursor=$(journalctl -q -n 1 --show-cursor -o cat 2>/dev/null | sed -n 's/^-- cursor: //p'); }
since_mark() { if [ -n "$cursor" ]; then journalctl -q -u bootmedic.service --after-cursor="$cursor" "$@"; else journalctl -q -u bootmedic.service "$@"; fi; }
# wait_count MESSAGE_ID N SECONDS [JOURNAL]: until bootmedic.service has journalled N entries with this id
# since the mark (or, with JOURNAL, a command that prints the message ids of the journal to read).
wait_count() {
  deadline=$(( $(now_ms) + $3 * 1000 ))
  while [ "$(now_ms)" -lt "$deadline" ]; do
    # (journalctl finds nothing when a FIELD=VALUE match meets --after-cursor: the ids are compared here)
    [ "$(${4:-since_mark} -o cat --output-fields=MESSAGE_ID 2>/dev/null | grep -cx "$1")" -ge "$2" ] && return 0
    sleep 0.2
  done
  return 1
}
# The programmers, made once and bound to a UDC when a part plugs them in: the real ids and strings;
# the ST-Link is a full-speed device. The restored board's bootloader goes on the other socket (a CDC
# function stands in for DFU's).
gadget usbasp 0x16c0 0x05dc "www.fischl.de" "USBasp"
gadget usbtiny 0x1781 0x0c9f "Dick Streefland" "USBtiny"
gadget usbaspclone 0x16c0 0x05dc "a clone maker" "USBasp-clone"
gadget uno 0x2341 0x0043 "Arduino (www.arduino.cc)" "Arduino Uno" acm.uno
gadget stlink 0x0483 0x3748 "STMicroelectronics" "STM32 STLink"
echo full-speed > /sys/kernel/config/usb_gadget/stlink/max_speed
gadget dfu 0x03eb 0x2ff4 "ATMEL" "ATm32U4DFU" acm.dfu
gadget promicro 0x1b4f 0x9205 "SparkFun" "SparkFun Pro Micro" acm.promicro
# A keyboard's ATmega32U4 in Atmel DFU: a full-speed FunctionFS gadget with a DFU-mode interface.
gadget qmkdfu 0x03eb 0x2ff4 "ATMEL" "ATm32U4DFU"
# A V-USB board's ATmega328P in USBaspLoader: the USBasp's ids, its own product string.
gadget usbasploader 0x16c0 0x05dc "www.fischl.de" "USBaspLoader"
# A Teensy 2.0 in HalfKay: a full-speed HID interface (FunctionFS with its HID descriptor).
gadget teensy 0x16c0 0x0478 "PJRC" "Teensy HalfKay"
# A PS2AVRGB keyboard in BootloadHID: a HID interface with feature reports (V-USB is low speed; the
# dummy UDC offers full speed).
gadget ps2avrgb 0x16c0 0x05df "obdev.at" "HIDBoot"
echo 0x00 > /sys/kernel/config/usb_gadget/ps2avrgb/bDeviceClass
echo full-speed > /sys/kernel/config/usb_gadget/ps2avrgb/max_speed
echo 0x00 > /sys/kernel/config/usb_gadget/teensy/bDeviceClass
echo full-speed > /sys/kernel/config/usb_gadget/teensy/max_speed
echo 0x00 > /sys/kernel/config/usb_gadget/qmkdfu/bDeviceClass
echo full-speed > /sys/kernel/config/usb_gadget/qmkdfu/max_speed
uno_tty=/dev/ttyGS$(cat /sys/kernel/config/usb_gadget/uno/functions/acm.uno/port_num)
promicro_tty=/dev/ttyGS$(cat /sys/kernel/config/usb_gadget/promicro/functions/acm.promicro/port_num)
# acm_of NAME: the host's /dev/ttyACM* of the plugged gadget NAME (bounded wait), or nothing.
acm_of() {
  for _ in $(seq 100); do
    for t in /sys/class/tty/ttyACM*; do
      [ "$(cat "$(readlink -f "$t/device")/../serial" 2>/dev/null)" = "$(serial_of $1)" ] && [ -e /dev/${t##*/} ] && { echo /dev/${t##*/}; return; }
    done
    sleep 0.05
  done
}

id_restored=f5b3ae2d1d914a1ebba540e8109c9a9b
id_failed=d02e1e2fa81049678dae0160f32217eb
id_removed=2811e27351aa44f3bc147fb1c00a397b
id_enumerated=ee05e6630eb74003a90387372c2d57d3
id_resumed=0b0e1a3743224d1bb5979b2782419195
id_healthy=14768e35df1648e98bb07194f302b9a1

# --- 0. The package as installed: the service runs with the shipped rules and restores a factory
# ATmega328P behind a USBasp with the Arduino bootloader from Debian's arduino-core-avr. Then it is
# stopped, so that the CLI has the programmers to itself until part 6.
systemctl is-active bootmedic.service > $out/pkg-active.txt
"$bin" rules check /etc/bootmedic/rules.toml > $out/pkg-rules-check.txt 2>&1
echo $? >> $out/pkg-rules-check.txt
mark_journal
simpart=atmega328p serve usbasp usbasp pkg-chip
simpart=
plug usbasp "$udc0"
wait_count $id_restored 1 60 && echo restored > $out/pkg-outcome.txt
since_mark -o json > $out/pkg-journal.json
unplug usbasp; unserve
timeout 30 systemctl stop bootmedic.service
step "the installed service restored an ATmega328P with the shipped rules"

# --- 1. A USBasp: enumeration, udev, the CLI's restore through libusb, avrdude as the reference.
if part 1; then
serve usbasp usbasp chip
start=$(now_ms)
plug usbasp "$udc0"
echo $(( $(now_ms) - start )) > $out/bind-to-settled-ms.txt
for d in /sys/bus/usb/devices/*; do
  [ -f "$d/idVendor" ] || continue
  echo "$(basename "$d") $(cat "$d/idVendor"):$(cat "$d/idProduct") $(cat "$d/product" 2>/dev/null)"
done > $out/devices.txt
dev=$(hostdev usbasp)
udevadm info --query=property --path="$dev" > $out/udev-properties.txt
stat -c '%a %U %G' "/dev/$(udevadm info --query=name --path="$dev")" > $out/devnode.txt
"$bin" self-test enumerate > $out/enumerate.txt 2>&1
step "usbasp gadget enumerated"
t0=$(now_ms)
bounded 120 restore-$(now_ms) "$bin" restore --rules "$guide" --firmware-dir "$VMTEST_FIRMWARE" --rule pro-micro-5v --backup-dir /tmp/backups \
  --programmer usbasp --json > $out/restore.json 2> $out/restore.err
echo $? > $out/restore-status.txt
echo $(( $(now_ms) - t0 )) > $out/restore-ms.txt
step "bootmedic restore over usbasp"
bounded 120 avrdude-$(now_ms) avrdude -c usbasp -p m32u4 -B 375kHz -U "flash:v:$VMTEST_FIRMWARE/Caterina-promicro16.hex:i" \
  -U lfuse:v:0xFF:m -U hfuse:v:0xD8:m > $out/avrdude.log 2>&1
echo $? > $out/avrdude-status.txt
step "avrdude -c usbasp verify"
unplug usbasp; unserve

# The cable pulled mid-write: a fresh factory chip, and the gadget unbound from the UDC as soon as the
# host has written its first flash page. bootmedic must say the programmer went away, keep the backup.
# The write must outlast the unplug's few commands on a loaded emulated CPU: Caterina-Micro's 70 pages
# at the factory clock's SCK (about 1.2 s), not Caterina's 32 at the raised one (0.3 s).
sed 's/^\[\[rule\]\]$/[[rule]]\nraise_clock = false/' "$guide" > /tmp/unraised.toml
serve usbasp usbasp pulled-chip
plug usbasp "$udc0"
"$bin" restore --rules /tmp/unraised.toml --firmware-dir "$VMTEST_FIRMWARE" --rule arduino-micro --backup-dir /tmp/pulled-backups \
  --programmer usbasp > $out/pulled-restore.txt 2>&1 4>&- 5<&- &
restore=$!
writing=$(read_line 60 "writing-$name")
unplug usbasp
watch_over $restore 120 pulled-restore
echo $? > $out/pulled-status.txt
ls /tmp/pulled-backups > $out/pulled-backups.txt 2>&1
unserve
step "usbasp pulled mid-write"
fi

# --- 2. A USBtinyISP: the CLI's restore, avrdude -c usbtiny as the reference.
if part 2; then
serve usbtiny usbtiny tiny-chip
plug usbtiny "$udc0"
udevadm info --query=property --path="$(hostdev usbtiny)" > $out/tiny-udev-properties.txt
bounded 120 restore-$(now_ms) "$bin" restore --rules "$guide" --firmware-dir "$VMTEST_FIRMWARE" --rule pro-micro-5v --backup-dir /tmp/backups \
  --programmer usbtiny > $out/tiny-restore.txt 2>&1
echo $? > $out/tiny-restore-status.txt
step "bootmedic restore over usbtiny"
bounded 120 avrdude-$(now_ms) avrdude -c usbtiny -p m32u4 -U "flash:v:$VMTEST_FIRMWARE/Caterina-promicro16.hex:i" \
  -U lfuse:v:0xFF:m -U hfuse:v:0xD8:m > $out/tiny-avrdude.log 2>&1
echo $? > $out/tiny-avrdude-status.txt
step "avrdude -c usbtiny verify"
unplug usbtiny; unserve
fi

# --- 3. An Arduino Uno running ArduinoISP: a CDC ACM gadget (the host's /dev/ttyACM0) carries the
# STK500v1 simulator on its gadget side (/dev/ttyGSn). The CLI restores through it; avrdude verifies.
if part 3; then
# ModemManager runs as on a desktop bench PC (its unit wants polkit, which a bench need not have: it is
# started directly, on the system bus, logging what its port filter decides).
mm=
if command -v ModemManager >/dev/null; then
  timeout 30 systemctl start dbus.socket dbus.service 2>/dev/null
  ModemManager --log-level=DEBUG --log-file=$out/mm.log 4>&- 5<&- &
  mm=$!
  for _ in $(seq 60); do timeout 5 mmcli -L > /dev/null 2>&1 && break; sleep 0.2; done
  timeout 10 mmcli -L > $out/mm-before.txt 2>&1
fi
serve uno stk500v1 uno-chip --tty "$uno_tty"
plug uno "$udc0"
acm=
for _ in $(seq 100); do
  for t in /sys/class/tty/ttyACM*; do
    [ "$(cat "$(readlink -f "$t/device")/../serial" 2>/dev/null)" = "$(serial_of uno)" ] && acm=/dev/${t##*/}
  done
  [ -n "$acm" ] && [ -e "$acm" ] && break
  sleep 0.05
done
udevadm settle --timeout=20
echo "$acm" > $out/uno-port.txt
udevadm info --query=property --name="$acm" > $out/uno-udev-properties.txt
# What udev's rules give the Uno and its tty, shown by udevadm test.
udevadm test --action=add "$(hostdev uno)" > $out/uno-udevadm-test-usb.txt 2>&1
udevadm test --action=add "/sys/class/tty/${acm##*/}" > $out/uno-udevadm-test-tty.txt 2>&1
stat -c '%a %U %G' "$acm" > $out/uno-devnode.txt
step "arduino uno gadget enumerated as $acm"
bounded 120 restore-$(now_ms) "$bin" restore --rules "$guide" --firmware-dir "$VMTEST_FIRMWARE" --rule pro-micro-5v --backup-dir /tmp/backups \
  --programmer stk500v1 --port "$acm" > $out/uno-restore.txt 2>&1
echo $? > $out/uno-restore-status.txt
step "bootmedic restore over stk500v1 (ACM gadget)"
bounded 120 avrdude-$(now_ms) avrdude -c stk500v1 -P "$acm" -b 19200 -p m32u4 -U "flash:v:$VMTEST_FIRMWARE/Caterina-promicro16.hex:i" \
  -U lfuse:v:0xFF:m -U hfuse:v:0xD8:m > $out/uno-avrdude.log 2>&1
echo $? > $out/uno-avrdude-status.txt
step "avrdude -c stk500v1 verify"
if [ -n "$mm" ]; then
  timeout 10 mmcli -L > $out/mm-after.txt 2>&1
  kill $mm
  for _ in $(seq 50); do kill -0 $mm 2>/dev/null || break; sleep 0.1; done
  kill -9 $mm 2>/dev/null; wait $mm
  step "ModemManager left the Uno alone"
fi
unserve; unplug uno
fi

# --- 4. An ST-Link/V2 wired to a read-protected Bluepill: a full-speed FunctionFS gadget with the
# ST-Link's bulk endpoints. The CLI unlocks (the rule allows it) and writes the STM32duino bootloader;
# st-flash, as the reference client, reads it back through the same gadget.
if part 4; then
simpart=stm32f103 serve stlink stlink stlink-chip --functionfs /dev/ffs-stlink --read-protected
simpart=
plug stlink "$udc0"
udevadm info --query=property --path="$(hostdev stlink)" > $out/stlink-udev-properties.txt
step "st-link gadget enumerated"
bounded 120 restore-$(now_ms) "$bin" restore --rules "$guide" --firmware-dir "$VMTEST_FIRMWARE" --rule bluepill --backup-dir /tmp/backups \
  --programmer stlink > $out/stlink-restore.txt 2>&1
echo $? > $out/stlink-restore-status.txt
step "bootmedic restore over st-link (unlock + write)"
size=$(stat -c %s "$VMTEST_FIRMWARE/generic_boot20_pc13.bin")
timeout 60 st-flash read /tmp/stlink-readback.bin 0x08000000 "$size" > $out/stlink-stflash.log 2>&1
echo $? > $out/stlink-stflash-status.txt
cmp /tmp/stlink-readback.bin "$VMTEST_FIRMWARE/generic_boot20_pc13.bin" > $out/stlink-stflash-cmp.txt 2>&1
echo $? >> $out/stlink-stflash-cmp.txt
step "st-flash read back"
unplug stlink; unserve
# The Bluepills a bench sees today and a Black Pill, each read-protected: a GD32F103 and an STM32F411
# read back by st-flash, a CKS32F103 by openocd, which refuses the clone's SW-DP IDCODE (0x2BA01477)
# until CPUTAPID says it, as benches do. The Black Pill's rule is the workshop's own: it writes the same
# 7 KiB image (a stand-in for the F4 bootloader a workshop keeps).
cat > /tmp/black-pill.toml <<'RULE'
[[rule]]
name = "black-pill"
match = { part = ["stm32f401", "stm32f411"] }
bootloader = "generic_boot20_pc13.bin"
sha256 = "8738933a44363f2a3597c7bd6e13afb892b2a4ed304372c31e758745b23b903c"
allow_unlock = true
RULE
for chip in gd32f103 stm32f411 cks32f103; do
  rules="$guide" rule=bluepill
  [ $chip = stm32f411 ] && rules=/tmp/black-pill.toml rule=black-pill
  simpart=$chip serve stlink stlink stlink-$chip --functionfs /dev/ffs-stlink --read-protected
  simpart=
  plug stlink "$udc0"
  bounded 120 restore-$chip "$bin" restore --rules "$rules" --firmware-dir "$VMTEST_FIRMWARE" --rule $rule --backup-dir /tmp/backups \
    --programmer stlink > $out/stlink-$chip-restore.txt 2>&1
  echo $? > $out/stlink-$chip-restore-status.txt
  rm -f /tmp/readback-$chip.bin
  if [ $chip = cks32f103 ]; then
    timeout 60 openocd -f interface/stlink.cfg -f target/stm32f1x.cfg -c init -c shutdown > $out/openocd-default.log 2>&1
    echo $? > $out/openocd-default-status.txt
    timeout 60 openocd -c "set CPUTAPID 0x2ba01477" -f interface/stlink.cfg -f target/stm32f1x.cfg -c init \
      -c "dump_image /tmp/readback-$chip.bin 0x08000000 $size" -c shutdown > $out/stlink-$chip-peer.log 2>&1
  else
    timeout 60 st-flash read /tmp/readback-$chip.bin 0x08000000 "$size" > $out/stlink-$chip-peer.log 2>&1
  fi
  echo $? > $out/stlink-$chip-peer-status.txt
  cmp /tmp/readback-$chip.bin "$VMTEST_FIRMWARE/generic_boot20_pc13.bin" > $out/stlink-$chip-cmp.txt 2>&1
  echo $? >> $out/stlink-$chip-cmp.txt
  step "$chip restored and read back"
  unplug stlink; unserve
done
fi

# --- 9. A Pro Micro waiting in Caterina (1B4F:9205, its CDC ACM tty), the chip holding Caterina at
# 0x7000: avrdude -c avr109 flashes a sketch through the simulated bootloader, then `bootmedic flash`
# does it with a rule that has only an application. Told to start the application, the board leaves
# USB: the simulator says "left" and the script unbinds the gadget, as the real board drops off the bus.
# through_bootloader NAME KIND PREFIX CLIENT [SIMULATE-ARGS...] -- COMMAND...: serves the board waiting
# in bootloader KIND behind gadget NAME (FunctionFS at /dev/ffs-NAME), plugs it in, runs the client
# COMMAND (bounded; output in $out/PREFIX-CLIENT.log, status in PREFIX-CLIENT-status.txt, wall time in
# PREFIX-times.txt) and unplugs the gadget once the simulator says "left", as the board drops off the
# bus when its application starts. $after_plug, if set, runs once the gadget is plugged in.
through_bootloader() {
  tb_name=$1 tb_kind=$2 tb_prefix=$3 tb_client=$4; shift 4
  tb_args=""
  while [ "$1" != "--" ]; do tb_args="$tb_args $1"; shift; done
  shift
  serve $tb_name bootloader:$tb_kind $tb_prefix-$tb_client-chip --functionfs /dev/ffs-$tb_name $tb_args
  plug $tb_name "$udc0"
  [ -n "${after_plug:-}" ] && eval "$after_plug"
  ( [ "$(read_line 150 $tb_prefix-left-$tb_client)" = writing ] && [ "$(read_line 150 $tb_prefix-left-$tb_client)" = left ] && unplug $tb_name ) &
  tb_leaver=$!
  tb_t0=$(now_ms)
  bounded 120 $tb_prefix-$tb_client "$@" > $out/$tb_prefix-$tb_client.log 2>&1
  tb_status=$?
  echo $tb_status > $out/$tb_prefix-$tb_client-status.txt
  echo "$tb_client $tb_status $(( $(now_ms) - tb_t0 ))" >> $out/$tb_prefix-times.txt
  wait $tb_leaver
  unplug $tb_name; unserve
}

# The 12 KiB sketch parts 9, 10 and 11 flash (at /tmp/sketch.hex and in $out).
/usr/bin/python3 - /tmp/sketch.hex <<'PY'
import random, sys
from intelhex import IntelHex
rng = random.Random(9)
image = IntelHex()
image.frombytes(bytes(rng.randrange(256) for _ in range(12000)), offset=0)
image.write_hex_file(sys.argv[1])
PY
cp /tmp/sketch.hex $out/sketch.hex
if part 9; then
cat > /tmp/sketch.toml <<'RULE'
[[rule]]
name = "pro-micro-sketch"
match = { part = "atmega32u4" }
application = "/tmp/sketch.hex"
RULE
for client in avrdude bootmedic; do
  serve promicro bootloader:caterina pm-$client-chip --tty "$promicro_tty" --initial-flash "$VMTEST_FIRMWARE/Caterina-promicro16.hex" --initial-fuses FF:D8:CB
  plug promicro "$udc0"
  acm=$(acm_of promicro)
  echo "$acm" > $out/pm-port.txt
  ( [ "$(read_line 150 left-$client)" = left ] && unplug promicro ) &
  leaver=$!
  if [ $client = avrdude ]; then
    bounded 120 avr109-flash avrdude -c avr109 -P "$acm" -b 57600 -p m32u4 -U flash:w:/tmp/sketch.hex:i > $out/pm-avrdude.log 2>&1
  else
    bounded 120 bootmedic-flash "$bin" flash --rules /tmp/sketch.toml --port "$acm" --backup-dir /tmp/backups > $out/pm-bootmedic.log 2>&1
  fi
  echo $? > $out/pm-$client-status.txt
  wait $leaver
  unplug promicro; unserve
  step "$client flashed the Pro Micro through Caterina"
done
fi

# --- 10. A QMK keyboard's ATmega32U4 waiting in Atmel DFU (03EB:2FF4, a full-speed FunctionFS gadget
# with a DFU-mode interface), the chip holding QMK's bootloader_atmega32u4_1_0_0.hex: dfu-programmer
# erases, flashes (and verifies) the 12 KiB sketch and resets it, then `bootmedic flash` finds the board
# on the bus by the catalog's ids and does the same with the application-only rule. On the reset the
# simulator says "left" and the script unbinds the gadget, as the board drops off the bus.
if part 10; then
: > $out/kb-times.txt
cat > /tmp/keyboard.toml <<'RULE'
[[rule]]
name = "keyboard"
match = { part = "atmega32u4" }
application = "/tmp/sketch.hex"
RULE
after_plug='interface=$(ls -d "$(hostdev qmkdfu)"/*:1.0 | head -1)
  echo "$(cat $interface/bInterfaceClass) $(cat $interface/bInterfaceSubClass) $(cat $interface/bInterfaceProtocol)" > $out/kb-interface.txt'
for client in dfu-programmer bootmedic; do
  if [ $client = dfu-programmer ]; then
    set -- sh -c 'dfu-programmer atmega32u4 erase && dfu-programmer atmega32u4 flash /tmp/sketch.hex && dfu-programmer atmega32u4 reset'
  else
    set -- "$bin" flash --rules /tmp/keyboard.toml --backup-dir /tmp/backups
  fi
  through_bootloader qmkdfu atmel-dfu kb $client --initial-flash "$VMTEST_FIRMWARE/bootloader_atmega32u4_1_0_0.hex" --initial-fuses 5E:99:F3 -- "$@"
  step "$client flashed the keyboard through Atmel DFU"
done
after_plug=
fi

# --- 12. A V-USB board's ATmega328P waiting in USBaspLoader (16C0:05DC, product "USBaspLoader"; the
# chip holds Debian's ATmegaBOOT at 0x7800 standing in for the loader's own code): avrdude -c
# usbasp-clone writes and verifies the sketch through the simulated loader, then `bootmedic flash
# --bootloader usbasploader` finds the board by its ids and product string and does it with an
# application-only rule (never unasked: a USBasp clone looks the same). Told to
# leave (USBasp's DISCONNECT), the loader starts the application and the board leaves USB.
if part 12; then
cat > /tmp/vusb.toml <<'RULE'
[[rule]]
name = "v-usb-sketch"
match = { part = "atmega328p" }
application = "/tmp/sketch.hex"
RULE
: > $out/vl-times.txt
simpart=atmega328p
for client in avrdude bootmedic; do
  if [ $client = avrdude ]; then
    set -- avrdude -c usbasp-clone -p m328p -U flash:w:/tmp/sketch.hex:i
  else
    set -- "$bin" flash --bootloader usbasploader --rules /tmp/vusb.toml --backup-dir /tmp/backups
  fi
  through_bootloader usbasploader usbasploader vl $client \
    --initial-flash /usr/share/arduino/hardware/arduino/avr/bootloaders/atmega/ATmegaBOOT_168_atmega328.hex --initial-fuses FF:DA:FD -- "$@"
  step "$client flashed the V-USB board through USBaspLoader"
done
simpart=
fi

# --- 13. A Teensy 2.0 in HalfKay (16C0:0478, a HID interface whose 130-byte output report tells the
# board): teensy_loader_cli writes the sketch and reboots it, then `bootmedic flash` finds the board by
# its ids and does it with an application-only rule (backup = false: HalfKay reads nothing back).
if part 13; then
cat > /tmp/teensy.toml <<'RULE'
[[rule]]
name = "teensy-sketch"
match = { part = "atmega32u4" }
application = "/tmp/sketch.hex"
backup = false
RULE
: > $out/tk-times.txt
for client in teensy_loader_cli bootmedic; do
  if [ $client = teensy_loader_cli ]; then
    set -- teensy_loader_cli --mcu=atmega32u4 -v /tmp/sketch.hex
  else
    set -- "$bin" flash --rules /tmp/teensy.toml
  fi
  through_bootloader teensy halfkay tk $client --initial-fuses 5F:DF:F4 -- "$@"
  step "$client flashed the Teensy through HalfKay"
done
fi

# --- 14. A PS2AVRGB keyboard's ATmega32A in BootloadHID (16C0:05DF "HIDBoot", a HID interface with two
# feature reports; the chip holding QMK's bootloader_ps2avrgb_bootloadhid_1.0.1.hex at 0x7000, fuses
# 0F:D0). No Debian package flashes BootloadHID: the kernel's HID driver is the peer that reads the
# gadget's report descriptor, and its hidraw node's HIDIOCGFEATURE reads the device info report; then
# `bootmedic flash` finds the board by its ids and product string and writes the sketch (backup = false:
# BootloadHID reads nothing back), the rest of the application section blank.
if part 14; then
cat > /tmp/ps2avrgb.toml <<'RULE'
[[rule]]
name = "ps2avrgb-sketch"
match = { part = "atmega32a" }
application = "/tmp/sketch.hex"
backup = false
RULE
: > $out/bh-times.txt
after_plug='node=$(ls "$(hostdev ps2avrgb)"/*:1.0/*/hidraw 2>/dev/null | head -1)
  echo "$node" > $out/bh-hidraw.txt
  [ -n "$node" ] && bounded 20 bh-hidraw /usr/bin/python3 -c "
import fcntl, sys
buf = bytearray(8); buf[0] = 1
fcntl.ioctl(open(\"/dev/$node\", \"rb+\", buffering=0), 0xC0000000 | len(buf) << 16 | 0x4807, buf)
print(\" \".join(\"%02x\" % b for b in buf[:7]))" > $out/bh-feature.txt 2>&1'
simpart=atmega32a
through_bootloader ps2avrgb bootloadhid bh bootmedic \
  --initial-flash "$VMTEST_FIRMWARE/bootloader_ps2avrgb_bootloadhid_1.0.1.hex" --initial-fuses 0F:D0 -- "$bin" flash --rules /tmp/ps2avrgb.toml
after_plug= simpart=
step "bootmedic flashed the PS2AVRGB board through BootloadHID"
fi

# on_virtual_bus KIND PREFIX CLIENT VID:PID [SIMULATE-ARGS...] -- COMMAND...: the STM32 board waiting in
# bootloader KIND, served by bootmedic's simulator on vhci_hcd (USB/IP: its own descriptors, the DFU
# functional descriptor and alternate settings a FunctionFS gadget cannot carry on this kernel); once it
# has enumerated, `dfu-util -l` lists it and COMMAND runs (its status and wall time in $out). The
# simulator says "writing", then "left" and unplugs itself when the bootloader starts the application.
on_virtual_bus() {
  vb_kind=$1 vb_prefix=$2 vb_client=$3 vb_ids=$4; shift 4
  vb_args=""
  while [ "$1" != "--" ]; do vb_args="$vb_args $1"; shift; done
  shift
  serve vbus bootloader:$vb_kind $vb_prefix-$vb_client-chip --usbip $vb_args
  for _ in $(seq 200); do
    grep -qx "${vb_ids#*:}" $(grep -lx "${vb_ids%:*}" /sys/bus/usb/devices/*/idVendor 2>/dev/null | sed 's/idVendor$/idProduct/') /dev/null 2>/dev/null && break
    sleep 0.05
  done
  udevadm settle --timeout=20
  bounded 30 $vb_prefix-list dfu-util -l -d "$vb_ids" > $out/$vb_prefix-$vb_client-list.txt 2>&1
  ( [ "$(read_line 150 $vb_prefix-left-$vb_client)" = writing ] && [ "$(read_line 150 $vb_prefix-left-$vb_client)" = left ] ) &
  vb_leaver=$!
  vb_t0=$(now_ms)
  bounded 120 $vb_prefix-$vb_client "$@" > $out/$vb_prefix-$vb_client.log 2>&1
  vb_status=$?
  echo $vb_status > $out/$vb_prefix-$vb_client-status.txt
  echo "$vb_client $vb_status $(( $(now_ms) - vb_t0 ))" >> $out/$vb_prefix-times.txt
  wait $vb_leaver
  udevadm settle --timeout=20
  unserve
}
/usr/bin/python3 -c 'import random, sys; sys.stdout.buffer.write(bytes(random.Random(15).randrange(256) for _ in range(20000)))' > /tmp/sketch.bin
cp /tmp/sketch.bin $out/sketch.bin

# --- 15. A Bluepill's STM32F103 waiting in the STM32duino bootloader (1EAF:0003, Maple DFU: alternate
# setting 2 takes the sketch above the bootloader's 8 KiB): dfu-util writes a 20000-byte sketch and
# resets the board into it, then `bootmedic flash` finds the board by its ids and does the same with
# a rule that places the raw binary (application_address), backing up and verifying by reading back.
if part 15; then
cat > /tmp/bluepill.toml <<'RULE'
[[rule]]
name = "bluepill-sketch"
match = { part = "stm32f103" }
application = "/tmp/sketch.bin"
application_address = 0x08002000
RULE
: > $out/mp-times.txt
simpart=stm32f103
for client in dfu-util bootmedic; do
  if [ $client = dfu-util ]; then
    set -- dfu-util -d 1eaf:0003 -a 2 -D /tmp/sketch.bin -R
  else
    set -- "$bin" flash --rules /tmp/bluepill.toml --backup-dir /tmp/backups
  fi
  on_virtual_bus stm32duino mp $client 1eaf:0003 --initial-flash "$VMTEST_FIRMWARE/generic_boot20_pc13.bin" -- "$@"
  step "$client flashed the Bluepill through the STM32duino bootloader"
done
simpart=
fi

# --- 16. A Black Pill's STM32F411 in ST's system bootloader (0483:DF11, DfuSe: the flash's sectors in
# alternate setting 0's name): dfu-util erases, writes and leaves (-s 0x08000000:leave), then
# `bootmedic flash` does it with an application-only rule, erasing only the sectors the backup did
# not read blank.
if part 16; then
cat > /tmp/blackpill.toml <<'RULE'
[[rule]]
name = "blackpill-firmware"
match = { part = "stm32f411" }
application = "/tmp/sketch.bin"
RULE
: > $out/ds-times.txt
simpart=stm32f411
for client in dfu-util bootmedic; do
  if [ $client = dfu-util ]; then
    set -- dfu-util -d 0483:df11 -a 0 -s 0x08000000:leave -D /tmp/sketch.bin
  else
    set -- "$bin" flash --rules /tmp/blackpill.toml --backup-dir /tmp/backups
  fi
  on_virtual_bus stm32-dfu ds $client 0483:df11 -- "$@"
  step "$client flashed the Black Pill through DfuSe"
done
simpart=
fi

# --- 17. An Arduino Leonardo running a sketch (2341:8036, a CDC ACM tty): bootmedic's simulator serves
# the board's USB on vhci_hcd, which carries the tty's line state to it (a FunctionFS gadget cannot be a
# CDC ACM function). The 1200-baud touch (opening the tty at 1200 baud and closing it, which drops DTR)
# sends it to Caterina (2341:0036) in the same USB socket; told to leave, or after 8 s without a
# request, Caterina starts the sketch and the board comes back as 2341:8036. The peer touches with stty
# and flashes with avrdude -c avr109; then `bootmedic flash --port` touches and flashes by the rule's
# use_1200bps_touch; then bootmedic.service does it unattended when the board is plugged in.
# acm_with VID:PID: the host's /dev/ttyACM* of the board with these ids (bounded wait), or nothing.
acm_with() {
  for _ in $(seq 200); do
    for t in /sys/class/tty/ttyACM*; do
      d=$(readlink -f "$t/device")/..
      [ "$(cat $d/idVendor 2>/dev/null):$(cat $d/idProduct 2>/dev/null)" = "$1" ] && [ -e /dev/${t##*/} ] && { udevadm settle --timeout=20; echo /dev/${t##*/}; return; }
    done
    sleep 0.05
  done
}
# leonardo PREFIX: serves the Leonardo (chip PREFIX-chip: factory ATmega32U4 with Caterina and the
# Pro Micro's fuses) running a sketch.
leonardo() {
  serve vbus bootloader:caterina $1-chip --usbip --running-sketch --initial-flash "$VMTEST_FIRMWARE/Caterina-promicro16.hex" --initial-fuses FF:D8:CB
}
# sketch_port PREFIX: the Leonardo's tty while it runs the sketch, in $sketch_tty.
sketch_port() { sketch_tty=$(acm_with 2341:8036); echo "$1 sketch ${sketch_tty:-none}" >> $out/lt-ports.txt; }
# expect_lines PREFIX LINE...: the simulator's next lines, in $out/PREFIX-lines.txt; false at the first
# that differs (or does not come within 60 s).
expect_lines() {
  el_prefix=$1; shift
  for el_want in "$@"; do
    el_line=$(read_line 60 "$el_prefix-$el_want") || return 1
    echo "$el_line" >> $out/$el_prefix-lines.txt
    [ "$el_line" = "$el_want" ] || return 1
  done
}
if part 17; then
cat > /tmp/leonardo.toml <<'RULE'
[[rule]]
name = "leonardo-sketch"
match = { usb = "2341:8036", part = "atmega32u4" }
use_1200bps_touch = true
application = "/tmp/sketch.hex"
RULE
: > $out/lt-ports.txt; : > $out/lt-times.txt
# The peers: the kernel's cdc-acm driver carries stty's touch; avrdude flashes through Caterina.
leonardo lt-avrdude
sketch_port lt-avrdude
t0=$(now_ms)
bounded 30 lt-touch stty -F "$sketch_tty" 1200 > $out/lt-stty.log 2>&1
if expect_lines lt-avrdude touched bootloader; then
  boot_tty=$(acm_with 2341:0036)
  echo "lt-avrdude bootloader ${boot_tty:-none}" >> $out/lt-ports.txt
  t1=$(now_ms)
  bounded 120 lt-avr109 avrdude -c avr109 -P "$boot_tty" -b 57600 -p m32u4 -U flash:w:/tmp/sketch.hex:i > $out/lt-avrdude.log 2>&1
  echo $? > $out/lt-avrdude-status.txt
  echo "avrdude $(cat $out/lt-avrdude-status.txt) $(( $(now_ms) - t0 )) $(( $(now_ms) - t1 ))" >> $out/lt-times.txt
  expect_lines lt-avrdude writing left sketch
fi
unserve
step "stty touched the Leonardo and avrdude flashed it through Caterina"
# bootmedic flash: the rule for the port's ids asks for the touch.
leonardo lt-bootmedic
sketch_port lt-bootmedic
t0=$(now_ms)
bounded 120 lt-flash "$bin" flash --rules /tmp/leonardo.toml --port "$sketch_tty" --backup-dir /tmp/backups > $out/lt-bootmedic.log 2>&1
echo $? > $out/lt-bootmedic-status.txt
echo "bootmedic $(cat $out/lt-bootmedic-status.txt) $(( $(now_ms) - t0 ))" >> $out/lt-times.txt
expect_lines lt-bootmedic touched bootloader writing left sketch
unserve
step "bootmedic flash touched the Leonardo and flashed it through Caterina"
# bootmedic.service: the board plugged in running a sketch is touched and flashed in one job.
mkdir -p /usr/local/share/bootmedic/firmware
cp /tmp/sketch.hex /usr/local/share/bootmedic/firmware/
cp /etc/bootmedic/rules.toml /tmp/rules.toml.orig
sed 's|"/tmp/sketch.hex"|"/usr/local/share/bootmedic/firmware/sketch.hex"|' /tmp/leonardo.toml > /etc/bootmedic/rules.toml
"$bin" rules check /etc/bootmedic/rules.toml > $out/lt-rules-check.txt 2>&1; echo $? >> $out/lt-rules-check.txt
mark_journal
timeout 60 systemctl start bootmedic.service
leonardo lt-agent
expect_lines lt-agent touched bootloader writing left sketch
wait_count $id_restored 1 60 && echo restored > $out/lt-agent-outcome.txt
# The sketch that came back is left alone: nothing more in the journal for a moment.
sleep 3
since_mark -o json > $out/lt-journal.json
unserve
timeout 30 systemctl stop bootmedic.service
cp /tmp/rules.toml.orig /etc/bootmedic/rules.toml
step "the service touched the Leonardo and flashed it through Caterina"
fi

# --- 11. The whole bench on one board, by bootmedic.service: a factory ATmega32U4 behind the USBasp
# gadget gets QMK's Atmel DFU bootloader merged with the sketch, and the rule's fuses, over ISP; then
# its own USB (the Atmel DFU gadget on the board's socket, its chip as the restore leaves it) enumerates
# as 03EB:2FF4, and the same job flashes through the bootloader what the ISP side cannot give: the
# rule's EEPROM settings (the sketch erased, written and verified again with them). The bootloader is
# told to start the application and the board leaves USB.
if part 11; then
mkdir -p /usr/local/share/bootmedic/firmware
cp "$VMTEST_FIRMWARE/bootloader_atmega32u4_1_0_0.hex" /tmp/sketch.hex /usr/local/share/bootmedic/firmware/
/usr/bin/python3 -c 'import random, sys; sys.stdout.buffer.write(bytes(random.Random(11).randrange(256) for _ in range(256)))' \
  > /usr/local/share/bootmedic/firmware/settings.bin
cp /usr/local/share/bootmedic/firmware/settings.bin $out/wb-settings.bin
"$bin" hex merge /tmp/sketch.hex "$VMTEST_FIRMWARE/bootloader_atmega32u4_1_0_0.hex" -o /tmp/wb-merged.hex > /dev/null
cp /etc/bootmedic/rules.toml /tmp/rules.toml.orig
cat > /etc/bootmedic/rules.toml <<'RULE'
[[rule]]
name = "keyboard-bench"
match = { part = "atmega32u4" }
bootloader = "bootloader_atmega32u4_1_0_0.hex"
application = "sketch.hex"
eeprom = "settings.bin"
fuses = { low = 0x5E, high = 0x99, extended = 0xF3 }
clock = "crystal"
clock_div8 = false
expect_usb = "03EB:2FF4"
RULE
sed -i '1i [defaults]\nfirmware_dir = "/usr/local/share/bootmedic/firmware"\n' /etc/bootmedic/rules.toml
"$bin" rules check /etc/bootmedic/rules.toml > $out/wb-rules-check.txt 2>&1; echo $? >> $out/wb-rules-check.txt
mark_journal
timeout 60 systemctl start bootmedic.service
# The board's own USB: its Atmel DFU bootloader on the second socket, served beside the USBasp (fds 6, 7).
rm -f /tmp/dfu-in /tmp/dfu-out; mkfifo /tmp/dfu-in /tmp/dfu-out
"$bin" simulate --bootloader atmel-dfu --part atmega32u4 --functionfs /dev/ffs-qmkdfu --initial-flash /tmp/wb-merged.hex \
  --initial-fuses 5E:99:F3 --state $out/wb-dfu-chip < /tmp/dfu-in > /tmp/dfu-out 2> $out/wb-dfu-chip.log &
dfusim=$!
exec 6> /tmp/dfu-in 7< /tmp/dfu-out
timeout 60 sh -c 'read -r line <&7 && echo "$line"' > /dev/null || diagnose serve-wb-dfu
serve usbasp usbasp wb-isp-chip
plug usbasp "$udc0"
wait_count $id_restored 1 60 && echo restored > $out/wb-isp-outcome.txt
plug qmkdfu "$udc1"
{ timeout 120 sh -c 'while read -r line <&7; do [ "$line" = left ] && exit 0; done; exit 1' && echo left > $out/wb-left.txt; } || diagnose wb-left
unplug qmkdfu
wait_count $id_restored 2 60 && echo restored > $out/wb-flash-outcome.txt
since_mark -o json > $out/wb-journal.json
unplug usbasp; unserve
exec 6>&- 7<&-; watch_over $dfusim 60 unserve-wb-dfu
timeout 30 systemctl stop bootmedic.service
cp /tmp/rules.toml.orig /etc/bootmedic/rules.toml
step "the service ran the whole bench on one board: ISP restore, bootloader, application"
fi

# --- 5. The same job through the real USB stack by bootmedic and by avrdude: Caterina and the rule's
# fuses onto a factory ATmega32U4, no backup (avrdude takes none), each on a fresh gadget chip; wall
# time of the client process in the guest (TCG: the host CPU is emulated, the USB frames are
# dummy_hcd's, the programmer's and chip's times are served in real time), and the programmer's busy
# span from the client's first request to its last (the job without the process's start-up).
if part 5; then
sed 's/^\[\[rule\]\]$/[[rule]]\nbackup = false\nrestore_eeprom = false/' "$guide" > /tmp/nobackup.toml
# The gadget's busy span (first request to last answer, from its session summary) in ms.
busy_ms() { sed -n 's/.*"busySeconds": \([0-9.]*\).*/\1/p' $out/$1.log | awk '{ printf "%d", $1 * 1000 }'; }
: > $out/bench.txt
for kind in usbasp usbtiny; do
      serve $kind $kind bench-$kind-bootmedic
  plug $kind "$udc0"
  t0=$(now_ms)
  bounded 120 restore-$(now_ms) "$bin" restore --rules /tmp/nobackup.toml --firmware-dir "$VMTEST_FIRMWARE" --rule pro-micro-5v --programmer $kind > $out/bench-$kind-bootmedic.txt 2>&1
  status=$? wall=$(( $(now_ms) - t0 ))
  unplug $kind; unserve
  echo "$kind bootmedic $status $wall $(busy_ms bench-$kind-bootmedic)" >> $out/bench.txt
  serve $kind $kind bench-$kind-avrdude
  plug $kind "$udc0"
  t0=$(now_ms)
  bounded 120 avrdude-$(now_ms) avrdude -c $kind -p m32u4 -U "flash:w:$VMTEST_FIRMWARE/Caterina-promicro16.hex:i" \
    -U lfuse:w:0xFF:m -U hfuse:w:0xD8:m -U efuse:w:0xCB:m > $out/bench-$kind-avrdude.txt 2>&1
  status=$? wall=$(( $(now_ms) - t0 ))
  unplug $kind; unserve
  echo "$kind avrdude $status $wall $(busy_ms bench-$kind-avrdude)" >> $out/bench.txt
done
step "bootmedic and avrdude, the same job on the same gadgets"
fi

# --- 6. bootmedic.service: the agent notices each programmer in turn and restores the board behind it
# (USBasp, USBtinyISP, the Arduino Uno after its harmless STK500 probe, the ST-Link with its
# read-protected Bluepill); after the first it sees the restored bootloader enumerate on the board's own
# socket; then a programmer is pulled mid-write. The journal is read back.
if part 6; then
# The administrator adds the guide's bootloaders: the files into the firmware folder, the rules (from
# the package's examples) appended to the shipped file. A workshop's USBasp clone with its own product
# string is declared there too, and the udev rules made again from the catalog with that entry in
# front, as the README tells an administrator.
mkdir -p /usr/local/share/bootmedic/firmware
cp "$VMTEST_FIRMWARE"/* /usr/local/share/bootmedic/firmware/
cat /usr/share/doc/bootmedic/examples/guide-rules.toml >> /etc/bootmedic/rules.toml
# This bench's name in the workshop (part 7 collects its journal).
sed -i 's/^# bench = "bench-3"$/bench = "bench-1"/' /etc/bootmedic/rules.toml
"$bin" rules check /etc/bootmedic/rules.toml > $out/edited-rules-check.txt 2>&1
echo $? >> $out/edited-rules-check.txt
cat >> /etc/bootmedic/rules.toml <<'TOML'

[[programmer]]
usb = "16C0:05DC"
product = "USBasp-clone"
kind = "usbasp"
TOML
"$bin" devices udev-rules --rules /etc/bootmedic/rules.toml -o /etc/udev/rules.d/60-bootmedic.rules
udevadm control --reload
mark_journal
timeout 60 systemctl start bootmedic.service
systemctl is-active bootmedic.service > $out/agent-active.txt
step "bootmedic.service started"
serve usbasp usbasp agent-chip
plug usbasp "$udc0"
t0=$(now_ms)
# When udev first saw the programmer (CLOCK_MONOTONIC µs): the gadget logs its first request on the same clock.
udevadm info -q property -p "$(hostdev usbasp)" | sed -n 's/^USEC_INITIALIZED=//p' > $out/agent-udev-usec.txt
wait_count $id_restored 1 30 && echo restored > $out/agent-outcome.txt
echo $(( $(now_ms) - t0 )) > $out/agent-restore-ms.txt
step "the agent restored the board behind the USBasp"
plug dfu "$udc1"
wait_count $id_enumerated 1 15 && echo enumerated > $out/agent-enumerated.txt
unplug usbasp
wait_count $id_removed 1 15 && echo removed > $out/agent-removed.txt
unplug dfu; unserve
step "the agent saw the bootloader enumerate and the programmer leave"
# The others in turn; each is unplugged once its board is restored (which also ends the slot's wait
# for the bootloader's USB id, nothing being on the board's socket).
restored=1
agent_restores() {  # NAME KIND STATE [WHERE...]
  name=$1; serve "$@"
  plug $name "$udc0"
  restored=$((restored + 1))
  wait_count $id_restored $restored 45 && echo restored > $out/$3-outcome.txt
  unplug $name; unserve
  step "the agent restored the board behind $name"
}
agent_restores usbtiny usbtiny agent-tiny-chip
serve usbaspclone usbasp agent-clone-chip
plug usbaspclone "$udc0"
udevadm info --query=property --path="$(hostdev usbaspclone)" > $out/clone-udev-properties.txt
restored=$((restored + 1))
wait_count $id_restored $restored 45 && echo restored > $out/agent-clone-chip-outcome.txt
unplug usbaspclone; unserve
step "the agent restored the board behind the declared USBasp clone"
agent_restores uno stk500v1 agent-uno-chip --tty "$uno_tty"
simpart=stm32f103 agent_restores stlink stlink agent-stlink-chip --functionfs /dev/ffs-stlink --read-protected
simpart=
# A crash mid-write: the service is killed (SIGKILL: no step finishes, nothing is flushed) as soon as
# the first flash page is written. systemd restarts it (Restart=on-failure), and the new process finds
# the record the killed one left in /var/lib/bootmedic/jobs and finishes that restore.
part6_cursor=$cursor
mark_journal
serve usbasp usbasp agent-killed-chip
plug usbasp "$udc0"
writing=$(read_line 60 "writing-$name")
systemctl kill -s KILL bootmedic.service
echo killed > $out/killed.txt
cp /var/lib/bootmedic/jobs/*.json $out/killed-record.json 2>/dev/null
wait_count $id_resumed 1 60 && echo resumed > $out/killed-resumed.txt
wait_count $id_restored 1 60 && echo restored > $out/killed-outcome.txt
systemctl show -p NRestarts --value bootmedic.service > $out/killed-restarts.txt
ls /var/lib/bootmedic/jobs > $out/killed-records-after.txt 2>&1
since_mark -o json --no-pager > $out/killed-journal.json
unplug usbasp
wait_count $id_removed 1 15
unserve
cursor=$part6_cursor
step "the service killed mid-write and restarted finished the restore"
serve usbasp usbasp agent-pulled-chip
plug usbasp "$udc0"
writing=$(read_line 60 "writing-$name")
unplug usbasp
wait_count $id_failed 1 30 && echo failed > $out/agent-pulled-outcome.txt
unserve
step "the agent reported the programmer pulled mid-write"
"$bin" status > $out/agent-status.txt 2>&1
timeout 30 systemctl stop bootmedic.service
since_mark -o json --no-pager > $out/agent-journal.json
since_mark -o verbose --no-pager > $out/agent-journal-verbose.txt
since_mark --no-pager > $out/agent-journal.txt
ls -R /var/lib/bootmedic > $out/agent-backups.txt 2>&1
step "journal read back"
fi
# --- 7. A workshop: this guest is also the collector. systemd-journal-remote listens over HTTP (the
# README's drop-in), systemd-journal-upload sends the system journal, which holds part 6's service as
# bench-1. Then the service becomes bench-2 and logs to a journal namespace of its own (the README's
# LogNamespace drop-in); a second uploader sends only that namespace. As bench-2 it restores one board,
# finds one healthy and loses one programmer mid-write; `bootmedic status --directory` on the collected
# journal must count both benches apart. (Its first board, a factory chip on the socket where part 6
# pulled a programmer mid-write, finishes that job from its record, as the agent does for a chip found again.)
if part 7; then
mkdir -p /etc/systemd/system/systemd-journal-remote.service.d /etc/systemd/journal-upload.conf.d \
  /etc/systemd/system/bootmedic.service.d
cat > /etc/systemd/system/systemd-journal-remote.service.d/http.conf <<'UNIT'
[Service]
ExecStart=
ExecStart=/lib/systemd/systemd-journal-remote --listen-http=-3 --output=/var/log/journal/remote/
UNIT
printf '[Upload]\nURL=http://127.0.0.1:19532\n' > /etc/systemd/journal-upload.conf.d/collector.conf
printf '[Service]\nLogNamespace=bootmedic\n' > /etc/systemd/system/bootmedic.service.d/namespace.conf
# The namespace's uploader: the package's unit with the README's ExecStart, as a second unit beside the
# system journal's (with a state file of its own).
sed -e 's|^ExecStart=.*|ExecStart=/lib/systemd/systemd-journal-upload --save-state=/var/lib/systemd/journal-upload-bootmedic/state -D /var/log/journal/%m.bootmedic|' \
    -e 's|^StateDirectory=.*|StateDirectory=systemd/journal-upload-bootmedic|' \
  /lib/systemd/system/systemd-journal-upload.service > /etc/systemd/system/journal-upload-bootmedic.service
# started_within SECONDS UNIT...: until each unit is active; else what systemd waits on, into hangs.
started_within() {
  limit=$1; shift
  for unit in "$@"; do
    deadline=$(( $(now_ms) + limit * 1000 ))
    until [ "$(systemctl is-active "$unit")" = active ]; do
      if [ "$(now_ms)" -ge "$deadline" ]; then
        { systemctl list-jobs --no-pager; systemctl status --no-pager "$unit"; journalctl -b --no-pager -n 40 -u "$unit"; } \
          > $out/hang-start-$unit.txt 2>&1
        echo "start-$unit" >> $out/hangs.txt
        break
      fi
      sleep 0.2
    done
  done
}
timeout 60 systemctl daemon-reload
step "units reloaded"
systemctl start --no-block systemd-journal-remote.socket systemd-journal-upload.service
started_within 30 systemd-journal-remote.socket systemd-journal-upload.service
step "collector and the system journal's uploader started"
sed -i 's/^bench = "bench-1"$/bench = "bench-2"/' /etc/bootmedic/rules.toml
# The bootmedic namespace's journal, for wait_count.
namespace_journal() { journalctl -q --namespace=bootmedic "$@"; }
timeout 60 systemctl start bootmedic.service
systemctl is-active bootmedic.service > $out/ws-active.txt
systemctl show -p LogNamespace --value bootmedic.service > $out/ws-namespace.txt
# The namespace's journal (persistent, as the system's), then its uploader.
nsdir=
for _ in $(seq 300); do
  for d in /var/log/journal/$(cat /etc/machine-id).bootmedic /run/log/journal/$(cat /etc/machine-id).bootmedic; do
    [ -d "$d" ] && nsdir=$d
  done
  [ -n "$nsdir" ] && break; sleep 0.1
done
echo "$nsdir" > $out/ws-namespace-dir.txt
systemctl start --no-block journal-upload-bootmedic.service
started_within 30 journal-upload-bootmedic.service
step "bench-2 service and the namespace's uploader started"
serve usbasp usbasp ws-chip
plug usbasp "$udc0"
wait_count $id_restored 1 45 namespace_journal && echo restored > $out/ws-restored.txt
unplug usbasp; unserve
serve usbasp usbasp ws-healthy-chip --functionfs /dev/ffs-usbasp --initial-flash $out/ws-chip/flash.bin --initial-fuses 5E:99:F3
plug usbasp "$udc0"
wait_count $id_healthy 1 45 namespace_journal && echo healthy > $out/ws-healthy.txt
unplug usbasp; unserve
serve usbasp usbasp ws-pulled-chip
plug usbasp "$udc0"
writing=$(read_line 60 "writing-$name")
unplug usbasp
wait_count $id_failed 1 30 namespace_journal && echo failed > $out/ws-failed.txt
unserve
step "bench-2 restored, found healthy and lost a programmer"
timeout 30 systemctl stop bootmedic.service
# Until the collector holds every finished job of both sources (bounded; the counts are the host's to check).
jobs_in() { journalctl -q "$@" -o cat --output-fields=MESSAGE_ID 2>/dev/null | grep -cxE "$id_restored|$id_healthy|$id_failed"; }
sent=$(( $(jobs_in) + $(jobs_in --namespace=bootmedic) ))
deadline=$(( $(now_ms) + 60000 ))
until [ "$(jobs_in --directory=/var/log/journal/remote)" -ge "$sent" ] || [ "$(now_ms)" -ge "$deadline" ]; do sleep 0.5; done
"$bin" status --directory /var/log/journal/remote --json > $out/ws-status.json 2> $out/ws-status.err
"$bin" status --directory /var/log/journal/remote > $out/ws-status.txt 2>&1
ls -l /var/log/journal/remote > $out/ws-remote-files.txt 2>&1
"$bin" status > $out/ws-local-status.txt 2>&1
journalctl -q --namespace=bootmedic -o json --no-pager > $out/ws-namespace-journal.json
systemctl is-active systemd-journal-remote.service systemd-journal-upload.service journal-upload-bootmedic.service \
  > $out/ws-units.txt 2>&1
timeout 30 systemctl stop journal-upload-bootmedic.service systemd-journal-upload.service systemd-journal-remote.service \
  systemd-journal-remote.socket
# (part 8's reinstall reloads the units)
rm -r /etc/systemd/system/bootmedic.service.d
step "the collector's journal summed up by bench"
fi

# --- 8. The package's life: reinstalled, the administrator's edited rules file stays (a conffile);
# purged, the binary, unit, udev rules, user and configuration go and the backups stay.
if part 8; then
echo "# edited on this bench" >> /etc/bootmedic/rules.toml
reinstall=$(md5sum < /etc/bootmedic/rules.toml)
DEBIAN_FRONTEND=noninteractive timeout 180 dpkg -i "$deb" > $out/reinstall.log 2>&1
echo $? > $out/reinstall-status.txt
[ "$(md5sum < /etc/bootmedic/rules.toml)" = "$reinstall" ] && echo kept > $out/conffile-kept.txt
step "reinstalled"
DEBIAN_FRONTEND=noninteractive timeout 180 apt-get purge -y bootmedic > $out/purge.log 2>&1
echo $? > $out/purge-status.txt
for f in /usr/bin/bootmedic /lib/systemd/system/bootmedic.service /lib/udev/rules.d/60-bootmedic.rules \
         /usr/lib/sysusers.d/bootmedic.conf /etc/bootmedic; do
  [ -e "$f" ] && echo "$f"
done > $out/purge-left.txt
getent passwd bootmedic >> $out/purge-left.txt
getent group bootmedic >> $out/purge-left.txt
find /var/lib/bootmedic/backups -name fuses.json | wc -l > $out/purge-backups.txt
step "purged"
fi
echo done > $out/done
