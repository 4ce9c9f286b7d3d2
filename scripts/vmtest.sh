#!/usr/bin/env bash
# Boots Debian's own kernel under QEMU (TCG; no KVM needed) with a busybox initramfs, shares this
# machine's filesystem read-only over virtio 9p under a tmpfs overlay, and runs scripts/vm/guest.sh
# there: real udevd with bootmedic's rules and a USBasp-shaped gadget on dummy_hcd, so the USB and udev
# paths meet a real kernel. Results come back as files in a writable share and are checked here.
# Needs: qemu-system-x86 busybox-static kmod cpio (scripts/install-deps.sh --vm), the package (make deb).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
ls dist/bootmedic_*.deb >/dev/null 2>&1 || { echo "vmtest: build the package first (make deb)" >&2; exit 2; }
firmware=$(scripts/firmware-dir.sh)
cache=${VMTEST_CACHE:-$repo/.build/vmtest}
mkdir -p "$cache"
t0=$(date +%s.%N)
stamp() { python3 -c "import sys,time; print('%6.2f s  %s' % (time.time() - float(sys.argv[1]), sys.argv[2]))" "$t0" "$1"; }

# Debian's kernel package, unpacked (never installed on this machine).
kernel_package() { apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -1; }
kpkg=$(kernel_package)
if [ -z "$kpkg" ]; then   # a machine whose package lists were never fetched
  $( [ "$(id -u)" -eq 0 ] || echo sudo ) apt-get update -qq
  kpkg=$(kernel_package)
fi
[ -n "$kpkg" ] || { echo "vmtest: apt knows no linux-image-amd64 package" >&2; exit 2; }
kver=${kpkg#linux-image-}
if [ ! -f "$cache/root/boot/vmlinuz-$kver" ]; then
  (cd "$cache" && rm -f linux-image-*.deb && apt-get download "$kpkg" 2>/dev/null)
  dpkg-deb -x "$cache"/linux-image-*.deb "$cache/root"
  depmod -b "$cache/root" "$kver"
fi
stamp "kernel $kver ready"

# The initramfs: busybox, the modules in dependency order, PID 1 and the guest script's path.
initrd=$(mktemp -d)
out=$cache/out; rm -rf "$out"; mkdir -p "$out"
trap 'rm -rf "$initrd"' EXIT
mkdir -p "$initrd/bin" "$initrd/modules" "$initrd/proc" "$initrd/sys" "$initrd/dev"
cp /bin/busybox "$initrd/bin/"
for module in dummy_hcd libcomposite usb_f_fs usb_f_acm cdc-acm usbhid hid-generic vhci-hcd virtio_pci 9pnet_virtio 9p overlay configfs; do
  modprobe -d "$cache/root" -S "$kver" --show-depends "$module"
done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }' > "$initrd/modules.list"
while read -r path; do cp "$path" "$initrd/modules/"; basename "$path"; done < "$initrd/modules.list" > "$initrd/modules.order"
cp scripts/vm/init.sh "$initrd/init"
echo "$repo/scripts/vm/guest.sh" > "$initrd/guest.path"
echo "$firmware" > "$initrd/firmware.path"
echo "${VMTEST_ONLY:-}" > "$initrd/only"
(cd "$initrd" && find . | cpio -o -H newc 2>/dev/null | gzip -1) > "$cache/initrd.gz"
stamp "initramfs built ($(wc -l < "$initrd/modules.order") modules)"

# Bounded: a guest that hangs is killed and reported, never left running. Unloaded the guest takes about
# 4 minutes, with make test beside it on the same 2 cores about 7; every wait inside has its own bound.
status=0
timeout --kill-after=10 "${VMTEST_TIMEOUT:-900}" qemu-system-x86_64 -m 1024 -smp 2 -nographic -no-reboot \
  -kernel "$cache/root/boot/vmlinuz-$kver" -initrd "$cache/initrd.gz" \
  -append "console=ttyS0 quiet panic=-1 systemd.show_status=1" \
  -virtfs local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap \
  -virtfs local,path="$out",mount_tag=out,security_model=none > "$cache/console.log" 2>&1 || status=$?
stamp "guest powered off (qemu exit $status)"
[ "$status" = 124 ] || [ "$status" = 137 ] && { echo "vmtest: the guest hung and was killed; console in $cache/console.log" >&2; exit 1; }
[ -f "$out/done" ] || { echo "vmtest: the guest did not finish; its log:" >&2; cat "$out/guest.log" >&2 || true; exit 1; }

# The checks, on what the guest wrote.
fail=0
# With VMTEST_ONLY=N the guest ran part N alone: only its checks (and the install's) apply.
section=0
section() { section=$1; }
selected() { [ -z "${VMTEST_ONLY:-}" ] || [ "$section" = 0 ] || case " $VMTEST_ONLY " in *" $section "*) true ;; *) false ;; esac; }
check() {  # description, command...
  local what=$1; shift
  selected || return 0
  if "$@"; then echo "ok    $what"; else echo "FAIL  $what"; fail=1; fi
}
both_held() { flash_holds "$1" "$2" && flash_holds "$1" "$3"; }  # flash.bin, two images
flash_holds() {  # flash.bin, image (Intel HEX, or raw binary from the flash's first byte)
  python3 - "$1" "$2" <<'PY'
import sys
flash, image = open(sys.argv[1], "rb").read(), sys.argv[2]
data, base = {}, 0
if image.endswith(".hex"):
    for line in open(image):
        raw = bytes.fromhex(line.strip()[1:])
        count, address, kind = raw[0], raw[1] << 8 | raw[2], raw[3]
        if kind == 0:
            for i in range(count):
                data[base + address + i] = raw[4 + i]
        elif kind == 2:
            base = (raw[4] << 8 | raw[5]) << 4
else:
    data = dict(enumerate(open(image, "rb").read()))
sys.exit(0 if data and all(flash[a] == v for a, v in data.items()) else 1)
PY
}
fuses_are() {  # fuses.json, low, high, extended [, the extended bits the part has: 0x0F on the ATmega32U4]
  python3 -c '
import json, sys
f = json.load(open(sys.argv[1]))
want = [int(v, 16) for v in sys.argv[2:5]]
mask = int(sys.argv[5], 16) if len(sys.argv) > 5 else 0x0F
sys.exit(0 if (f["low"], f["high"], f["extended"] & mask) == (want[0], want[1], want[2] & mask) else 1)' "$@"
}
mm_left_alone() {  # mm.log, the Uno's tty, mmcli -L: no probe task for the port, no modem
  ! grep -qE "task [0-9]+,${2##*/}:|\[${2##*/}/" "$1" && grep -q "No modems were found" "$3"
}
last_line_is() { [ "$(tail -1 "$2")" = "$1" ]; }
chip_holds() {  # chip state folder, image, low, high, extended [, extended mask]: flash and fuses both as given
  flash_holds "$1/flash.bin" "$2" && fuses_are "$1/fuses.json" "$3" "$4" "$5" ${6:-}
}
check "no wait in the guest hit its bound (else: $out/hang-*.txt say what each process waited on)" test ! -s "$out/hangs.txt"
check "the package installs with apt-get (dist/$(cd dist && ls bootmedic_*.deb))" grep -qx 0 "$out/install-status.txt"
check "two UDCs: the programmers' socket and the board's" test "$(wc -l < "$out/udc.txt")" = 2
check "with no further step bootmedic.service runs (started by the package)" grep -qx active "$out/pkg-active.txt"
check "bootmedic rules check /etc/bootmedic/rules.toml exits 0 as installed (arduino-core-avr present)" last_line_is 0 "$out/pkg-rules-check.txt"
check "it restored a factory ATmega328P behind a USBasp gadget" grep -qx restored "$out/pkg-outcome.txt"
arduino=/usr/share/arduino/hardware/arduino/avr/bootloaders/atmega/ATmegaBOOT_168_atmega328.hex
check "with the shipped rule: ATmegaBOOT from arduino-core-avr on the chip, fuses L FF, H DA, E FD" \
  chip_holds "$out/pkg-chip" "$arduino" FF DA FD 0x07
check "its journal entry names the shipped rule and the part" python3 - "$out/pkg-journal.json" <<'PY'
import json, sys
entries = [json.loads(line) for line in open(sys.argv[1])]
done = [e for e in entries if e.get("MESSAGE_ID") == "f5b3ae2d1d914a1ebba540e8109c9a9b"]
sys.exit(0 if done and done[0].get("BOOTMEDIC_RULE") == "arduino-atmega328p-16mhz" and done[0].get("BOOTMEDIC_PART") == "ATmega328P"
         and done[0].get("BOOTMEDIC_FUSES") == "L 0xFF, H 0xDA, E 0xFD" else 1)
PY
section 1
check "the gadget enumerates as 16c0:05dc USBasp" grep -Eq '^[0-9]-1 16c0:05dc USBasp$' "$out/devices.txt"
check "udev tagged it BOOTMEDIC_PROGRAMMER=usbasp" grep -q '^BOOTMEDIC_PROGRAMMER=usbasp$' "$out/udev-properties.txt"
check "udev tagged it for the agent and the seat" grep -Eq '^(CURRENT_)?TAGS=.*:bootmedic:' "$out/udev-properties.txt"
check "its node is 0660 root:bootmedic" grep -q '^660 root bootmedic$' "$out/devnode.txt"
check "the agent's libudev enumeration calls it a usbasp" grep -Eq ' 16c0:05dc USBasp /dev/bus/usb/00[0-9]/[0-9]+ usbasp$' "$out/enumerate.txt"
check "bootmedic restore through libusb and the kernel exits 0" grep -qx 0 "$out/restore-status.txt"
check "the gadget's chip holds the Caterina bootloader" flash_holds "$out/chip/flash.bin" "$firmware/Caterina-promicro16.hex"
check "and its fuses are the rule's (L FF, H D8, E FB)" fuses_are "$out/chip/fuses.json" FF D8 FB
check "avrdude -c usbasp verifies the same flash and fuses on the gadget" grep -qx 0 "$out/avrdude-status.txt"
check "a gadget unbound mid-write: restore exits 4 (programmer gone)" grep -qx 4 "$out/pulled-status.txt"
check "and says so, naming the backup it kept" grep -q "disappeared from USB while writing flash" "$out/pulled-restore.txt"
check "the backup was taken before anything was erased" grep -q atmega32u4 "$out/pulled-backups.txt"
section 2
check "udev tagged the USBtinyISP gadget BOOTMEDIC_PROGRAMMER=usbtiny" grep -q '^BOOTMEDIC_PROGRAMMER=usbtiny$' "$out/tiny-udev-properties.txt"
check "bootmedic restore over the USBtinyISP gadget exits 0" grep -qx 0 "$out/tiny-restore-status.txt"
check "its chip holds the Caterina bootloader and the rule's fuses" chip_holds "$out/tiny-chip" "$firmware/Caterina-promicro16.hex" FF D8 FB
check "avrdude -c usbtiny verifies it" grep -qx 0 "$out/tiny-avrdude-status.txt"
section 3
check "an Arduino Uno gadget (2341:0043, CDC ACM) appears as /dev/ttyACM*" grep -q '^/dev/ttyACM[0-9]' "$out/uno-port.txt"
check "udev names its ids for the agent's serial catalog" grep -q '^ID_MODEL_ID=0043$' "$out/uno-udev-properties.txt"
check "udevadm test: the Uno's USB device gets ID_MM_DEVICE_IGNORE=1" grep -qx "ID_MM_DEVICE_IGNORE=1" "$out/uno-udevadm-test-usb.txt"
check "udevadm test: and so does its tty, which ModemManager would open" grep -qx "ID_MM_DEVICE_IGNORE=1" "$out/uno-udevadm-test-tty.txt"
check "ModemManager ran beside it and filtered the Uno's port out as blocklisted (ID_MM_DEVICE_IGNORE)" \
  grep -qF "(tty/$(basename "$(cat "$out/uno-port.txt")")): port filtered: device is blocklisted" "$out/mm.log"
check "ModemManager never probed it, and found no modem" mm_left_alone "$out/mm.log" "$(cat "$out/uno-port.txt")" "$out/mm-after.txt"
check "bootmedic restore over the ACM gadget's STK500v1 exits 0" grep -qx 0 "$out/uno-restore-status.txt"
check "its chip holds the Caterina bootloader and the rule's fuses" chip_holds "$out/uno-chip" "$firmware/Caterina-promicro16.hex" FF D8 FB
check "avrdude -c stk500v1 verifies it through the same ACM gadget" grep -qx 0 "$out/uno-avrdude-status.txt"
section 4
check "udev tagged the ST-Link/V2 gadget BOOTMEDIC_PROGRAMMER=stlink" grep -q '^BOOTMEDIC_PROGRAMMER=stlink$' "$out/stlink-udev-properties.txt"
check "bootmedic unlocks the read-protected Bluepill and restores it over the ST-Link gadget" grep -qx 0 "$out/stlink-restore-status.txt"
check "the unlock mass-erased the chip once, and RDP is off" grep -q '"readProtected": false, "massErases": 1' "$out/stlink-chip/session.json"
check "the chip's flash holds the STM32duino bootloader at 0x08000000" flash_holds "$out/stlink-chip/flash.bin" "$firmware/generic_boot20_pc13.bin"
check "st-flash reads the same bootloader back through the gadget" last_line_is 0 "$out/stlink-stflash-cmp.txt"
for chip in gd32f103 stm32f411 cks32f103; do
  check "bootmedic unlocks and restores a read-protected $chip over the ST-Link gadget" grep -qx 0 "$out/stlink-$chip-restore-status.txt"
  check "  the journal-facing summary names it" grep -q "^restored: $(case $chip in gd32f103) echo GD32F103;; stm32f411) echo 'STM32F411xC/E';; cks32f103) echo CKS32F103;; esac) now has" "$out/stlink-$chip-restore.txt"
  check "  the unlock mass-erased it once, and RDP is off" grep -q '"readProtected": false, "massErases": 1' "$out/stlink-$chip/session.json"
  check "  $( [ $chip = cks32f103 ] && echo openocd || echo st-flash ) reads the bootloader back" last_line_is 0 "$out/stlink-$chip-cmp.txt"
done
check "openocd's stm32f1x.cfg refuses the CKS32F103 without CPUTAPID (UNEXPECTED idcode 0x2ba01477)" \
  sh -c '! grep -qx 0 "$1" && grep -qi "unexpected idcode: 0x2ba01477" "$2"' - "$out/openocd-default-status.txt" "$out/openocd-default.log"
section 9
for client in avrdude bootmedic; do
  check "$client flashes a sketch through the Caterina gadget ($(cat "$out/pm-port.txt" 2>/dev/null))" grep -qx 0 "$out/pm-$client-status.txt"
  check "  the chip holds the sketch below Caterina, which is untouched" \
    both_held "$out/pm-$client-chip/flash.bin" "$out/sketch.hex" "$firmware/Caterina-promicro16.hex"
done
check "bootmedic flash saw the bootloader leave USB once the sketch started" grep -q "the application runs: the bootloader's device went away" "$out/pm-bootmedic.log"
section 10
check "the Atmel DFU gadget enumerates with a DFU-mode interface (class fe, subclass 01, protocol 02)" grep -qx "fe 01 02" "$out/kb-interface.txt"
for client in dfu-programmer bootmedic; do
  check "$client flashes a sketch through the Atmel DFU gadget" grep -qx 0 "$out/kb-$client-status.txt"
  check "  the chip holds the sketch below QMK's Atmel DFU bootloader, which is untouched" \
    both_held "$out/kb-$client-chip/flash.bin" "$out/sketch.hex" "$firmware/bootloader_atmega32u4_1_0_0.hex"
  check "  and the reset took it out of the bootloader" grep -q '"left": true' "$out/kb-$client-chip/session.json"
done
check "dfu-programmer 0.6.1 validated its write against the simulated bootloader" sh -c 'grep -q "Validating" "$1" && ! grep -qi "did not validate" "$1"' - "$out/kb-dfu-programmer.log"
check "bootmedic flash found the board by its ids and saw it leave USB" \
  sh -c 'grep -q "Atmel DFU bootloader version 0x10 at 1-" "$1" && grep -q "the application runs: the bootloader.s device went away" "$1"' - "$out/kb-bootmedic.log"
section 12
for client in avrdude bootmedic; do
  check "$client flashes a sketch through the USBaspLoader gadget" grep -qx 0 "$out/vl-$client-status.txt"
  check "  the chip holds the sketch below the loader's section, which is untouched" \
    both_held "$out/vl-$client-chip/flash.bin" "$out/sketch.hex" "$arduino"
  check "  and the loader left for the application" grep -q '"left": true' "$out/vl-$client-chip/session.json"
done
check "avrdude 7.1 verified its write through the simulated loader" grep -q "12000 bytes of flash verified" "$out/vl-avrdude.log"
check "bootmedic flash --bootloader usbasploader found it (not the USBasp) by its product string and saw it leave USB" \
  sh -c 'grep -q "^USBaspLoader at " "$1" && grep -q "the application runs: the bootloader.s device went away" "$1"' - "$out/vl-bootmedic.log"
[ -s "$out/vl-times.txt" ] && awk '{ t[$1] = $3 / 1000 } END { printf "the 12 KiB sketch through the USBaspLoader gadget, wall time in the guest (TCG): bootmedic flash %.2f s, avrdude -c usbasp-clone %.2f s\n", t["bootmedic"], t["avrdude"] }' "$out/vl-times.txt"
section 13
for client in teensy_loader_cli bootmedic; do
  check "$client flashes a sketch through the HalfKay gadget" grep -qx 0 "$out/tk-$client-status.txt"
  check "  the chip holds the sketch, the rest of the application area erased" python3 - "$out/tk-$client-chip/flash.bin" "$out/sketch.hex" <<'PY'
import sys
flash = open(sys.argv[1], "rb").read()
data = {}
for line in open(sys.argv[2]):
    raw = bytes.fromhex(line.strip()[1:])
    if raw[3] == 0:
        for i in range(raw[0]): data[(raw[1] << 8 | raw[2]) + i] = raw[4 + i]
sys.exit(0 if all(flash[a] == v for a, v in data.items()) and all(b == 0xFF for b in flash[max(data) + 1:0x7E00]) else 1)
PY
  check "  and it rebooted into the application" grep -q '"left": true' "$out/tk-$client-chip/session.json"
done
check "bootmedic flash knew the Teensy 2.0 by HalfKay's 130-byte report" grep -q "HalfKay on a Teensy 2.0 (130-byte reports)" "$out/tk-bootmedic.log"
[ -s "$out/tk-times.txt" ] && awk '{ t[$1] = $3 / 1000 } END { printf "the 12 KiB sketch through the HalfKay gadget, wall time in the guest (TCG): bootmedic flash %.2f s, teensy_loader_cli %.2f s\n", t["bootmedic"], t["teensy_loader_cli"] }' "$out/tk-times.txt"
section 14
check "the kernel's HID driver gave the BootloadHID gadget a hidraw node ($(cat "$out/bh-hidraw.txt" 2>/dev/null))" grep -q '^hidraw' "$out/bh-hidraw.txt"
check "  whose HIDIOCGFEATURE reads the device info report: 128-byte pages, 32 KiB of flash" grep -qx "01 80 00 00 80 00 00" "$out/bh-feature.txt"
check "bootmedic flashes a sketch through the BootloadHID gadget" grep -qx 0 "$out/bh-bootmedic-status.txt"
check "  the chip holds the sketch, the rest below BootloadHID blank, BootloadHID untouched" python3 - "$out/bh-bootmedic-chip/flash.bin" "$out/sketch.hex" "$firmware/bootloader_ps2avrgb_bootloadhid_1.0.1.hex" <<'PY'
import sys
flash = open(sys.argv[1], "rb").read()
def records(path):
    data, base = {}, 0
    for line in open(path):
        raw = bytes.fromhex(line.strip()[1:])
        if raw[3] == 0:
            for i in range(raw[0]): data[base + (raw[1] << 8 | raw[2]) + i] = raw[4 + i]
        elif raw[3] in (2, 4):
            base = int.from_bytes(raw[4:6], "big") << (4 if raw[3] == 2 else 16)
    return data
sketch, loader = records(sys.argv[2]), records(sys.argv[3])
ok = all(flash[a] == v for a, v in sketch.items()) and all(flash[a] == 0xFF for a in range(max(sketch) + 1, 0x7000))
sys.exit(0 if ok and all(flash[a] == v for a, v in loader.items()) else 1)
PY
check "  and it left for the application" grep -q '"left": true' "$out/bh-bootmedic-chip/session.json"
check "bootmedic flash knew the ATmega32A by BootloadHID's sizes and saw it leave USB" \
  sh -c 'grep -q "ATmega32A (told by its 32 KiB of flash in 128-byte pages)" "$1" && grep -q "the application runs: the bootloader.s device went away" "$1"' - "$out/bh-bootmedic.log"
[ -s "$out/bh-times.txt" ] && awk '{ printf "the 12 KiB sketch through the BootloadHID gadget, wall time in the guest (TCG): bootmedic flash %.2f s\n", $3 / 1000 }' "$out/bh-times.txt"
section 15
check "the STM32duino bootloader enumerates on vhci_hcd with its DFU functional descriptor and three alternate settings" \
  sh -c 'grep -q "1eaf:0003" "$1" && [ "$(grep -c "alt=" "$1")" = 3 ] && grep -q "Upload to Flash 0x8002000" "$1"' - "$out/mp-dfu-util-list.txt"
for client in dfu-util bootmedic; do
  check "$client flashes a sketch through the STM32duino bootloader" grep -qx 0 "$out/mp-$client-status.txt"
  check "  the Bluepill holds the sketch at 0x08002000, the STM32duino bootloader untouched" python3 - "$out/mp-$client-chip/flash.bin" "$out/sketch.bin" "$firmware/generic_boot20_pc13.bin" <<'PY'
import sys
flash, sketch, loader = (open(p, "rb").read() for p in sys.argv[1:4])
sys.exit(0 if flash[:len(loader)] == loader and flash[0x2000:0x2000 + len(sketch)] == sketch else 1)
PY
  check "  and the USB reset rebooted it into the sketch" grep -q '"left": true' "$out/mp-$client-chip/session.json"
done
check "bootmedic flash told the F103 by the flash the bootloader reads back and verified the sketch" \
  sh -c 'grep -q "STM32F10x medium-density (told by its 64 KiB of flash in 1024-byte pages)" "$1" && grep -q "20000 bytes match" "$1"' - "$out/mp-bootmedic.log"
[ -s "$out/mp-times.txt" ] && awk '{ t[$1] = $3 / 1000 } END { printf "a 20000-byte sketch through the STM32duino bootloader on vhci_hcd, wall time in the guest (TCG): bootmedic flash %.2f s, dfu-util %.2f s\n", t["bootmedic"], t["dfu-util"] }' "$out/mp-times.txt"
section 16
check "the STM32 system bootloader enumerates on vhci_hcd with the DfuSe layout of an F411" \
  sh -c 'grep -q "0483:df11" "$1" && grep -q "@Internal Flash /0x08000000/04\*016Kg,01\*064Kg,03\*128Kg" "$1"' - "$out/ds-dfu-util-list.txt"
for client in dfu-util bootmedic; do
  check "$client flashes firmware through DfuSe" grep -qx 0 "$out/ds-$client-status.txt"
  check "  the Black Pill holds it at 0x08000000" python3 - "$out/ds-$client-chip/flash.bin" "$out/sketch.bin" <<'PY'
import sys
flash, sketch = (open(p, "rb").read() for p in sys.argv[1:3])
sys.exit(0 if flash[:len(sketch)] == sketch else 1)
PY
  check "  and it left for the application" grep -q '"left": true' "$out/ds-$client-chip/session.json"
done
check "bootmedic flash told the F411 by its DfuSe layout and verified the firmware" \
  sh -c 'grep -q "STM32F411xC/E (told by its 512 KiB of flash in sectors of 16–128 KiB)" "$1" && grep -q "20000 bytes match" "$1"' - "$out/ds-bootmedic.log"
[ -s "$out/ds-times.txt" ] && awk '{ t[$1] = $3 / 1000 } END { printf "20000 bytes through DfuSe on vhci_hcd, wall time in the guest (TCG): bootmedic flash %.2f s, dfu-util %.2f s\n", t["bootmedic"], t["dfu-util"] }' "$out/ds-times.txt"
section 17
check "the Leonardo running a sketch enumerates on vhci_hcd as 2341:8036 with a CDC ACM tty" grep -q "^lt-avrdude sketch /dev/ttyACM" "$out/lt-ports.txt"
check "stty's 1200-baud touch sent it to Caterina (2341:0036) in the same USB socket" \
  sh -c 'grep -q "^lt-avrdude bootloader /dev/ttyACM" "$1" && [ "$(head -2 "$2" | tr "\n" " ")" = "touched bootloader " ]' - "$out/lt-ports.txt" "$out/lt-avrdude-lines.txt"
sketch_and_caterina() { both_held "$1/flash.bin" "$out/sketch.hex" "$firmware/Caterina-promicro16.hex" && fuses_are "$1/fuses.json" FF D8 CB; }
check "avrdude -c avr109 flashes the sketch through it" grep -qx 0 "$out/lt-avrdude-status.txt"
check "bootmedic flash --port <the sketch's tty> touches the board (the rule's use_1200bps_touch) and flashes the sketch" grep -qx 0 "$out/lt-bootmedic-status.txt"
check "bootmedic.service touches the plugged-in Leonardo and flashes the sketch" grep -qx restored "$out/lt-agent-outcome.txt"
for client in avrdude bootmedic agent; do
  check "  $client: the chip holds the sketch, Caterina untouched, the fuses as they were" sketch_and_caterina "$out/lt-$client-chip"
  check "  $client: Caterina started the sketch and the board came back as 2341:8036" \
    sh -c '[ "$(tail -3 "$1" | tr "\n" " ")" = "writing left sketch " ]' - "$out/lt-$client-lines.txt"
done
check "bootmedic flash said what it did" \
  sh -c 'grep -q "sending Arduino Leonardo .* to its bootloader (1200-baud touch)" "$1" && grep -q "the application runs: the bootloader.s device went away" "$1"' - "$out/lt-bootmedic.log"
check "the touch rule checks clean" last_line_is 0 "$out/lt-rules-check.txt"
check "one BOOTMEDIC_JOB from the touch to the sketch running, in the journal; the returning sketch left alone" python3 - "$out/lt-journal.json" <<'PY'
import json, sys
entries = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
jobs = {e["BOOTMEDIC_JOB"] for e in entries if "BOOTMEDIC_JOB" in e}
found = [e for e in entries if e.get("MESSAGE_ID") == "653ff7d7d1b44943a18bba4e1ca67320"]
enumerated = [e for e in entries if e.get("MESSAGE_ID") == "ee05e6630eb74003a90387372c2d57d3"]
results = [e for e in entries if "BOOTMEDIC_RESULT" in e]
ok = (len(jobs) == 1 and len(found) == 1 and "1200-baud touch" in found[0].get("MESSAGE", "")
      and found[0].get("BOOTMEDIC_RULE") == "leonardo-sketch"
      and len(enumerated) == 1 and enumerated[0].get("BOOTMEDIC_BOOTLOADER") == "caterina"
      and [r["BOOTMEDIC_RESULT"] for r in results] == ["restored"]
      and any("unplug it to flash the next board there" in e.get("MESSAGE", "") for e in entries))
if not ok:
    for e in entries: print(e.get("BOOTMEDIC_JOB", "-")[:8], e.get("MESSAGE_ID", "-")[:6], e.get("BOOTMEDIC_STEP", "-"), e.get("MESSAGE", ""), file=sys.stderr)
sys.exit(0 if ok else 1)
PY
[ -s "$out/lt-times.txt" ] && awk '{ t[$1] = $3 / 1000; a[$1] = $4 / 1000 } END { printf "the 1200-baud touch and the 12 KiB sketch through Caterina on vhci_hcd, wall time in the guest (TCG): bootmedic flash %.2f s (touch, wait for Caterina, backup, erase, write, verify, exit); stty, the script finding the new tty and avrdude -c avr109 %.2f s, of which avrdude (erase, write, verify) %.2f s\n", t["bootmedic"], t["avrdude"], a["avrdude"] }' "$out/lt-times.txt"
section 11
check "the whole-bench rules check clean" last_line_is 0 "$out/wb-rules-check.txt"
check "bootmedic.service restored the factory ATmega32U4 behind the USBasp" grep -qx restored "$out/wb-isp-outcome.txt"
check "  its chip holds QMK's Atmel DFU bootloader, with the rule's fuses" chip_holds "$out/wb-isp-chip" "$firmware/bootloader_atmega32u4_1_0_0.hex" 5E 99 F3
check "  and the sketch below it" flash_holds "$out/wb-isp-chip/flash.bin" "$out/sketch.hex"
check "the restored board's bootloader enumerated and was told to start the application" grep -qx left "$out/wb-left.txt"
check "  the bootloader flashed the sketch and wrote the rule's EEPROM settings" sh -c '
  grep -qx restored "$1" && python3 -c "import sys; e = open(sys.argv[1], \"rb\").read(); s = open(sys.argv[2], \"rb\").read(); sys.exit(0 if e[:256] == s else 1)" "$2/eeprom.bin" "$3"' - \
  "$out/wb-flash-outcome.txt" "$out/wb-dfu-chip" "$out/wb-settings.bin"
check "  its chip holds the bootloader and the sketch" both_held "$out/wb-dfu-chip/flash.bin" "$out/sketch.hex" "$firmware/bootloader_atmega32u4_1_0_0.hex"
check "one BOOTMEDIC_JOB from the ISP restore to the application running, in the journal" python3 - "$out/wb-journal.json" <<'PY'
import json, sys
entries = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
jobs = {e["BOOTMEDIC_JOB"] for e in entries if "BOOTMEDIC_JOB" in e}
results = [e for e in entries if "BOOTMEDIC_RESULT" in e]
steps = [e.get("BOOTMEDIC_STEP") for e in entries if e.get("BOOTMEDIC_BOOTLOADER") == "atmel-dfu"]
enumerated = [e for e in entries if e.get("MESSAGE_ID") == "ee05e6630eb74003a90387372c2d57d3"]
ok = (len(jobs) == 1 and [r["BOOTMEDIC_PROGRAMMER"] for r in results] == ["usbasp", "atmel-dfu"]
      and all(r["BOOTMEDIC_RESULT"] == "restored" for r in results) and len(enumerated) == 1
      and "write-eeprom" in steps and "release" in steps
      and any("the application runs" in e.get("MESSAGE", "") for e in entries))
if not ok:
    for e in entries: print(e.get("BOOTMEDIC_JOB", "-")[:8], e.get("BOOTMEDIC_PROGRAMMER", "-"), e.get("BOOTMEDIC_STEP", "-"), e.get("MESSAGE", ""), file=sys.stderr)
sys.exit(0 if ok else 1)
PY
section 6
check "the shipped rules with the guide's appended check clean (its files in /usr/local/share/bootmedic/firmware)" last_line_is 0 "$out/edited-rules-check.txt"
check "bootmedic.service starts (Type=notify, as user bootmedic)" grep -qx active "$out/agent-active.txt"
check "the service restored the board behind the plugged USBasp" grep -qx restored "$out/agent-outcome.txt"
check "its chip holds the Atmel DFU bootloader (the config's first rule)" flash_holds "$out/agent-chip/flash.bin" "$firmware/bootloader_atmega32u4_1_0_0.hex"
check "and the rule's fuses (L 5E, H 99, E F3)" fuses_are "$out/agent-chip/fuses.json" 5E 99 F3
check "the service saw the restored bootloader enumerate (03EB:2FF4)" grep -qx enumerated "$out/agent-enumerated.txt"
check "the service noticed the programmer unplugged" grep -qx removed "$out/agent-removed.txt"
check "then the board behind the USBtinyISP" grep -qx restored "$out/agent-tiny-chip-outcome.txt"
check "its chip holds the Atmel DFU bootloader" flash_holds "$out/agent-tiny-chip/flash.bin" "$firmware/bootloader_atmega32u4_1_0_0.hex"
check "udev tagged the declared USBasp clone (its own product string) BOOTMEDIC_PROGRAMMER=usbasp" grep -q '^BOOTMEDIC_PROGRAMMER=usbasp$' "$out/clone-udev-properties.txt"
check "then the board behind the USBasp clone the rules file declares" grep -qx restored "$out/agent-clone-chip-outcome.txt"
check "its chip holds the Atmel DFU bootloader" flash_holds "$out/agent-clone-chip/flash.bin" "$firmware/bootloader_atmega32u4_1_0_0.hex"
check "then the board behind the Arduino Uno (probed over STK500 first)" grep -qx restored "$out/agent-uno-chip-outcome.txt"
check "its chip holds the Atmel DFU bootloader" flash_holds "$out/agent-uno-chip/flash.bin" "$firmware/bootloader_atmega32u4_1_0_0.hex"
check "then the read-protected Bluepill behind the ST-Link (unlocked: allow_unlock)" grep -qx restored "$out/agent-stlink-chip-outcome.txt"
check "its flash holds the STM32duino bootloader" flash_holds "$out/agent-stlink-chip/flash.bin" "$firmware/generic_boot20_pc13.bin"
check "the unlock mass-erased it once, and RDP is off" grep -q '"readProtected": false, "massErases": 1' "$out/agent-stlink-chip/session.json"
check "killed with SIGKILL mid-write, the service was restarted by systemd" bash -c "grep -qx killed '$out/killed.txt' && [ \"\$(cat '$out/killed-restarts.txt')\" -ge 1 ]"
check "the killed job had left its record (step write-flash, the backup named)" python3 - "$out/killed-record.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
sys.exit(0 if r["step"] in ("write-flash", "verify-flash") and r["backup"].startswith("/var/lib/bootmedic/backups/") and r["rule"] == "atmel-dfu-atmega32u4" else 1)
PY
check "the restarted service resumed that job and restored the board" bash -c "grep -qx resumed '$out/killed-resumed.txt' && grep -qx restored '$out/killed-outcome.txt'"
check "its chip holds the Atmel DFU bootloader and the rule's fuses" chip_holds "$out/agent-killed-chip" "$firmware/bootloader_atmega32u4_1_0_0.hex" 5E 99 F3
check "the record is gone once the chip is restored" bash -c "[ ! -s '$out/killed-records-after.txt' ]"
check "the journal links the two jobs: two processes, the second's entries carry BOOTMEDIC_RESUMES, no second backup" python3 - "$out/killed-journal.json" "$out/killed-record.json" <<'PY'
import json, sys
entries = [json.loads(line) for line in open(sys.argv[1])]
record = json.load(open(sys.argv[2]))
first = record["job"]
started = [e for e in entries if e.get("MESSAGE_ID") == "7b8975c1f4d442b0b1b32f239cb1b726"]
resumed = [e for e in entries if e.get("MESSAGE_ID") == "0b0e1a3743224d1bb5979b2782419195"]
done = [e for e in entries if e.get("MESSAGE_ID") == "f5b3ae2d1d914a1ebba540e8109c9a9b"]
firsts = [e for e in entries if e.get("BOOTMEDIC_JOB") == first]
ok = (len(resumed) == 1 and resumed[0].get("BOOTMEDIC_RESUMES") == first and len(done) == 1
      and done[0].get("BOOTMEDIC_RESUMES") == first and done[0]["BOOTMEDIC_JOB"] != first
      and done[0].get("BOOTMEDIC_BACKUP") == record["backup"] == resumed[0].get("BOOTMEDIC_BACKUP")
      and {e["_PID"] for e in firsts} != {done[0]["_PID"]}
      and not any(e.get("BOOTMEDIC_STEP") in ("backup", "health-check") and e.get("BOOTMEDIC_JOB") == done[0]["BOOTMEDIC_JOB"] for e in entries)
      and [e.get("BOOTMEDIC_JOB") for e in started] == [first, done[0]["BOOTMEDIC_JOB"]])
for e in firsts[:1] + resumed + done:
    print("      ", e.get("_PID"), e.get("BOOTMEDIC_JOB"), e.get("BOOTMEDIC_RESUMES", "-"), e["MESSAGE"])
sys.exit(0 if ok else 1)
PY
check "bootmedic status names the resumption" grep -q "finished the interrupted job" "$out/agent-status.txt"
check "a programmer pulled mid-write: the service journals a failure" grep -qx failed "$out/agent-pulled-outcome.txt"
check "that entry names the programmer gone" python3 - "$out/agent-journal.json" <<'PY'
import json, sys
entries = [json.loads(line) for line in open(sys.argv[1])]
failed = [e for e in entries if e.get("MESSAGE_ID") == "d02e1e2fa81049678dae0160f32217eb"]
sys.exit(0 if failed and "disappeared from USB" in failed[-1]["MESSAGE"] and failed[-1].get("PRIORITY") == "3" else 1)
PY
check "the restored entry and its steps carry the fields of DESIGN.md (BOOTMEDIC_BENCH: the rules' bench name)" python3 - "$out/agent-journal.json" <<'PY'
import json, sys
entries = [json.loads(line) for line in open(sys.argv[1])]
done = [e for e in entries if e.get("MESSAGE_ID") == "f5b3ae2d1d914a1ebba540e8109c9a9b"]
e = done[0] if done else {}
steps = [s for s in entries if s.get("BOOTMEDIC_JOB") == e.get("BOOTMEDIC_JOB") and s.get("MESSAGE_ID") == "2d328a7740814abb9c54ceb76b4cf13f"]
sys.exit(0 if e.get("BOOTMEDIC_RULE") == "atmel-dfu-atmega32u4" and e.get("BOOTMEDIC_PART") == "ATmega32U4"
         and e.get("BOOTMEDIC_SIGNATURE") == "0x1E9587" and e.get("BOOTMEDIC_RESULT") == "restored" and e.get("PRIORITY") == "5"
         and e.get("BOOTMEDIC_PROGRAMMER") == "usbasp" and "BOOTMEDIC_PORT" in e and "BOOTMEDIC_BACKUP" in e
         and e.get("BOOTMEDIC_FUSES") == "L 0x5E, H 0x99, E 0xF3" and e.get("_SYSTEMD_UNIT") == "bootmedic.service"
         and all(s.get("BOOTMEDIC_BENCH") == "bench-1" for s in steps + [e])
         and [s.get("BOOTMEDIC_STEP") for s in steps] == ["connect", "identify", "select-rule", "check", "health-check", "backup", "erase",
                                                         "write-flash", "verify-flash", "restore-eeprom", "write-fuses", "verify-fuses", "release"]
         and all("BOOTMEDIC_DURATION_MS" in s and "BOOTMEDIC_BYTES" in s for s in steps) else 1)
PY
check "bootmedic status reads the same journal" grep -q "usbtiny.*1 restored" "$out/agent-status.txt"
section 7
check "bench-2's service logs to its own journal namespace (LogNamespace=bootmedic, persistent)" \
  bash -c "grep -qx bootmedic '$out/ws-namespace.txt' && grep -q '^/var/log/journal/.*\.bootmedic$' '$out/ws-namespace-dir.txt'"
check "the collector and both uploaders ran until stopped" test "$(grep -cx active "$out/ws-units.txt")" = 3
check "as bench-2 the service restored a board, found one healthy and lost a programmer mid-write" \
  bash -c "grep -qx restored '$out/ws-restored.txt' && grep -qx healthy '$out/ws-healthy.txt' && grep -qx failed '$out/ws-failed.txt'"
check "the system journal's uploader left bench-2 out: its namespace's entries all carry BOOTMEDIC_BENCH=bench-2" python3 - "$out/ws-namespace-journal.json" <<'PY'
import json, sys
entries = [json.loads(line) for line in open(sys.argv[1])]
mine = [e for e in entries if e.get("_SYSTEMD_UNIT") == "bootmedic.service"]
sys.exit(0 if mine and all(e.get("BOOTMEDIC_BENCH") == "bench-2" for e in mine) else 1)
PY
check "status --directory on the collector's journal: bench-1 6 restored, 1 failed; bench-2 1 restored, 1 healthy, 1 failed" \
  python3 - "$out/ws-status.json" <<'PY'
import json, sys
summary = json.load(open(sys.argv[1]))
benches = {b.get("bench"): b for b in summary["benches"]}
one, two = benches.get("bench-1", {}), benches.get("bench-2", {})
for name, b in (("bench-1", one), ("bench-2", two)):
    print(f"      {name} on {b.get('host')}: {b.get('restored')} restored, {b.get('healthy')} healthy, {b.get('failed')} failed;",
          "failures:", [(f.get("step"), f.get("count")) for f in b.get("failures", [])])
ok = ((one.get("restored"), one.get("healthy"), one.get("failed")) == (6, 0, 1)
      and (two.get("restored"), two.get("healthy"), two.get("failed")) == (1, 1, 1)
      and [f["count"] for f in two["failures"]] == [1] and "disappeared from USB" in two["failures"][0]["reason"]
      and {p["programmer"] for p in one["programmers"]} == {"usbasp", "usbtiny", "stk500v1", "stlink"}
      and [r["rule"] for r in two["rules"] if r["restored"]] == ["atmel-dfu-atmega32u4"])
sys.exit(0 if ok else 1)
PY
check "the collected journal is the collector's own (journal-remote's files under /var/log/journal/remote)" \
  grep -q '\.journal$' "$out/ws-remote-files.txt"
check "bootmedic status on the bench reads the namespace too" grep -q "bench-2" "$out/ws-local-status.txt"
section 8
check "reinstalled with dpkg -i" grep -qx 0 "$out/reinstall-status.txt"
check "the administrator's edited /etc/bootmedic/rules.toml survives the reinstall (a conffile)" grep -qx kept "$out/conffile-kept.txt"
check "apt-get purge removes binary, unit, udev rules, sysusers entry, user, group and /etc/bootmedic" \
  bash -c "grep -qx 0 '$out/purge-status.txt' && [ ! -s '$out/purge-left.txt' ]"
check "and leaves the backups under /var/lib/bootmedic/backups" bash -c "[ \"\$(cat '$out/purge-backups.txt')\" -ge 1 ]"
section 5
bench_chips_ok() {  # every job exited 0 and left Caterina and the rule's fuses on its chip
  [ "$(awk '$3 == 0' "$out/bench.txt" | wc -l)" = 4 ] || return 1
  for chip in usbasp-bootmedic usbasp-avrdude usbtiny-bootmedic usbtiny-avrdude; do
    chip_holds "$out/bench-$chip" "$firmware/Caterina-promicro16.hex" FF D8 FB || return 1
  done
}
check "bootmedic and avrdude both wrote Caterina and the fuses through each gadget" bench_chips_ok
if [ -s "$out/bench.txt" ]; then
echo "the same job (Caterina 4 KiB + fuses, factory ATmega32U4, no backup) through the real USB stack,"
echo "wall time of the client process in the guest (TCG), and the programmer's busy span (first request to last answer):"
python3 - "$out/bench.txt" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    kind, client, status, ms, busy = line.split()
    rows.setdefault(kind, {})[client] = (int(ms) / 1000, int(busy) / 1000)
for kind, t in rows.items():
    (bw, bb), (aw, ab) = t["bootmedic"], t["avrdude"]
    print(f"  {kind:8} process: bootmedic {bw:.2f} s, avrdude 7.1 {aw:.2f} s, ratio {bw / aw:.2f};"
          f"  busy: bootmedic {bb:.2f} s, avrdude 7.1 {ab:.2f} s, ratio {bb / ab:.2f}")
PY
fi
[ -s "$out/kb-times.txt" ] && awk '{ t[$1] = $3 / 1000 } END { printf "the 12 KiB sketch through the Atmel DFU gadget, wall time in the guest (TCG): bootmedic flash %.2f s (backup, erase, write, verify, start), dfu-programmer 0.6.1 %.2f s (erase + blank check, flash + validate, reset: three processes)\n", t["bootmedic"], t["dfu-programmer"] }' "$out/kb-times.txt"
first=$(sed -n 's/.*"firstRequestMonotonicMicroseconds": \([0-9]*\).*/\1/p' "$out/agent-chip.log" 2>/dev/null || true)
seen=$(cat "$out/agent-udev-usec.txt" 2>/dev/null || true)
[ -n "$first" ] && [ -n "$seen" ] && echo "bootmedic.service: udev's first sight of the USBasp (USEC_INITIALIZED) to the agent's first" \
  "command at the gadget: $(( (first - seen) / 1000 )) ms (guest clock, TCG; udev's rules and the libusb open included)"
[ -z "${VMTEST_ONLY:-}" ] && echo "bind to udev settled: $(cat "$out/bind-to-settled-ms.txt") ms; CLI restore:" \
  "$(cat "$out/restore-ms.txt") ms; agent plug to restored: $(cat "$out/agent-restore-ms.txt") ms (guest clock, TCG)"
echo "guest steps (ms since the test service started):"; sed 's/^/  /' "$out/steps.txt"
stamp "done"
exit $fail
