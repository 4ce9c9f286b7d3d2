#!/bin/busybox sh
# PID 1 of the vmtest initramfs: loads the modules (in the order the host's modprobe worked out), puts
# the host's filesystem, shared read-only over virtio 9p, under a tmpfs overlay, writes the test's
# units into the overlay and hands PID 1 to systemd there. systemd brings up journald and udevd and
# runs vmtest.service (scripts/vm/guest.sh), which powers the machine off whatever happens.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
# dummy_hcd with two UDCs: one for the programmers, one for the restored board's own USB.
for module in $(cat /modules.order); do
  case $module in dummy_hcd.*) args=num=2 ;; *) args= ;; esac
  insmod "/modules/$module" $args || echo "vmtest: insmod $module failed"
done
mkdir -p /host /rw /root
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=524288 host /host || echo "vmtest: the host share did not mount"
mount -t tmpfs tmpfs /rw
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/host,upperdir=/rw/upper,workdir=/rw/work /root || echo "vmtest: overlay failed"
mkdir -p /root/vmtest-out
mount -t 9p -o trans=virtio,version=9p2000.L out /root/vmtest-out || echo "vmtest: the out share did not mount"

# The guest's own identity and units (in the overlay only): no fstab, a fresh machine id, the test.
: > /root/etc/fstab
rm -f /root/etc/machine-id /root/.dockerenv /root/run/.containerenv
# A container image's policy-rc.d forbids maintainer scripts to start services; a bench PC has none.
rm -f /root/usr/sbin/policy-rc.d
units=/root/etc/systemd/system
mkdir -p $units
cat > $units/vmtest.target <<UNIT
[Unit]
Description=bootmedic virtual bench
Requires=vmtest.service
After=vmtest.service
AllowIsolate=yes
UNIT
cat > $units/vmtest.service <<UNIT
[Unit]
Description=bootmedic virtual bench test (scripts/vm/guest.sh)
Wants=systemd-udevd.service systemd-journald.service
After=systemd-udevd.service systemd-journald.service systemd-udev-trigger.service
[Service]
Type=oneshot
Environment=VMTEST_FIRMWARE=$(cat /firmware.path) "VMTEST_ONLY=$(cat /only)" PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ExecStart=/bin/sh $(cat /guest.path)
StandardOutput=file:/vmtest-out/guest.log
StandardError=inherit
TimeoutStartSec=${VMTEST_GUEST_TIMEOUT:-870}
# Whatever the script did, power off straight away (the out share is written through, nothing to unmount).
ExecStopPost=/bin/sh -c 'sync; systemctl poweroff --force --force'
UNIT
# What a bench PC runs but this test does not need; tmpfiles alone would walk the 9p share for a minute.
# The guest has no network to wait for: network-online.target (the journal uploader's) is reached at once.
for unit in systemd-networkd-wait-online.service systemd-tmpfiles-setup.service systemd-tmpfiles-clean.timer systemd-timesyncd.service \
            systemd-update-utmp.service apt-daily.timer apt-daily-upgrade.timer man-db.timer e2scrub_all.timer; do
  ln -sf /dev/null $units/$unit
done
exec switch_root /root /lib/systemd/systemd --unit=vmtest.target
