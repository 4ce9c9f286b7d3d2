#!/bin/sh
# Runs inside the vmtest guest, in the host's filesystem under a throwaway overlay, on a real kernel
# USB stack: udevd with bootmedic's rules, then a USBasp-shaped gadget bound to dummy_hcd's UDC.
# Everything it finds goes to /vmtest-out for the host to check.
set -u
out=/vmtest-out
repo=$(cd "$(dirname "$0")/../.." && pwd)

# bootmedic installed the way an administrator does it (into the overlay only): binary, unit, udev
# rules, journal catalog, the service's user and group, the config; the bench's firmware beside it.
bin="$repo/.build/release/bootmedic"
make -s -C "$repo" -o release install BOOTMEDIC_BIN="$bin" > $out/install.log 2>&1
echo $? > $out/install-status.txt
mkdir -p /usr/share/bootmedic/firmware
cp "$VMTEST_FIRMWARE"/* /usr/share/bootmedic/firmware/
udevadm trigger --action=add
udevadm settle --timeout=20
ps -ef > $out/ps.txt

# A gadget with the USBasp's ids and strings; its function is FunctionFS, served by bootmedic's own
# USBasp simulator (the one the in-process tests use) wrapping a factory ATmega32U4.
g=/sys/kernel/config/usb_gadget/usbasp
mkdir -p $g/strings/0x409 $g/configs/c.1 $g/functions/ffs.usbasp
echo 0x16c0 > $g/idVendor
echo 0x05dc > $g/idProduct
echo 0xff > $g/bDeviceClass
echo "www.fischl.de" > $g/strings/0x409/manufacturer
echo "USBasp" > $g/strings/0x409/product
echo "VMTEST1" > $g/strings/0x409/serialnumber
ln -s $g/functions/ffs.usbasp $g/configs/c.1/
mkdir -p /dev/ffs-usbasp
mount -t functionfs usbasp /dev/ffs-usbasp
mkfifo /tmp/gadget-stdin /tmp/gadget-out
"$bin" simulate --programmer usbasp --part atmega32u4 --functionfs /dev/ffs-usbasp --state $out/chip \
  < /tmp/gadget-stdin > /tmp/gadget-out 2> $out/gadget.log &
exec 4> /tmp/gadget-stdin
exec 5< /tmp/gadget-out
read -r ready <&5
echo "gadget: $ready" > $out/gadget-ready.txt
start=$(date +%s%N)
ls /sys/class/udc > $out/udc.txt
ls /sys/class/udc | head -1 > $g/UDC
# dummy_hcd's hub thread enumerates the gadget after the bind returns: wait for it, then for udev.
for _ in $(seq 200); do [ -e /sys/bus/usb/devices/1-1/idVendor ] && break; sleep 0.05; done
udevadm settle --timeout=20
end=$(date +%s%N)

for d in /sys/bus/usb/devices/*; do
  [ -f "$d/idVendor" ] || continue
  echo "$(basename "$d") $(cat "$d/idVendor"):$(cat "$d/idProduct") $(cat "$d/product" 2>/dev/null)"
done > $out/devices.txt
node=$(udevadm info --query=name --path=/sys/bus/usb/devices/1-1)
udevadm info --query=property --path=/sys/bus/usb/devices/1-1 > $out/udev-properties.txt
stat -c '%a %U %G' "/dev/$node" > $out/devnode.txt
echo $(( (end - start) / 1000000 )) > $out/bind-to-settled-ms.txt
# The agent's own view: bootmedic's libudev enumeration finds the programmer.
"$bin" self-test enumerate > $out/enumerate.txt 2>&1 || true

# A restore through libusb, usbfs and dummy_hcd to the gadget: the real USB path end to end.
t0=$(date +%s%N)
"$bin" restore --rules "$repo/config/rules.toml" --firmware-dir "$VMTEST_FIRMWARE" --rule pro-micro-5v \
  --backup-dir /tmp/backups --programmer usbasp --json > $out/restore.json 2> $out/restore.err
echo $? > $out/restore-status.txt
echo $(( ($(date +%s%N) - t0) / 1000000 )) > $out/restore-ms.txt
# Debian's avrdude as the reference client on the same gadget: it must read back what bootmedic wrote.
avrdude -c usbasp -p m32u4 -B 375kHz -U "flash:v:$VMTEST_FIRMWARE/Caterina-promicro16.hex:i" \
  -U lfuse:v:0xFF:m -U hfuse:v:0xD8:m > $out/avrdude.log 2>&1
echo $? > $out/avrdude-status.txt
exec 4>&- 5<&-
wait

# The cable pulled mid-write: a fresh factory chip, and the gadget unbound from the UDC as soon as the
# host has written its first flash page. bootmedic must say the programmer went away, keep the backup.
echo "" > $g/UDC 2>/dev/null
"$bin" simulate --programmer usbasp --part atmega32u4 --functionfs /dev/ffs-usbasp --state $out/pulled-chip \
  < /tmp/gadget-stdin > /tmp/gadget-out 2> $out/pulled-gadget.log &
exec 4> /tmp/gadget-stdin
exec 5< /tmp/gadget-out
read -r ready <&5
ls /sys/class/udc | head -1 > $g/UDC
for _ in $(seq 200); do [ -e /sys/bus/usb/devices/1-1/idVendor ] && break; sleep 0.05; done
udevadm settle --timeout=20
"$bin" restore --rules "$repo/config/rules.toml" --firmware-dir "$VMTEST_FIRMWARE" --rule pro-micro-5v \
  --backup-dir /tmp/pulled-backups --programmer usbasp > $out/pulled-restore.txt 2>&1 &
restore=$!
read -r writing <&5
echo "" > $g/UDC 2>/dev/null
echo "unbound after: $writing" > $out/pulled-when.txt
wait $restore
echo $? > $out/pulled-status.txt
ls /tmp/pulled-backups > $out/pulled-backups.txt 2>&1
exec 4>&- 5<&-
wait
echo done > $out/done
