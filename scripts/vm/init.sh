#!/bin/busybox sh
# PID 1 of the vmtest initramfs: loads the modules (in the order the host's modprobe worked out), puts
# the host's filesystem, shared read-only over virtio 9p, under a tmpfs overlay, and runs the guest
# script in it. Results go to the writable "out" share; the machine powers off whatever happens.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for module in $(cat /modules.order); do insmod "/modules/$module" || echo "vmtest: insmod $module failed"; done
mkdir -p /host /rw /root
mount -t 9p -o trans=virtio,version=9p2000.L,ro host /host || echo "vmtest: the host share did not mount"
mount -t tmpfs tmpfs /rw
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/host,upperdir=/rw/upper,workdir=/rw/work /root || echo "vmtest: overlay failed"
mount -t proc proc /root/proc; mount -t sysfs sys /root/sys; mount -t devtmpfs dev /root/dev
mount -t tmpfs tmpfs /root/run; mount -t tmpfs tmpfs /root/tmp
mount -t configfs none /root/sys/kernel/config
mkdir -p /root/vmtest-out
mount -t 9p -o trans=virtio,version=9p2000.L out /root/vmtest-out || echo "vmtest: the out share did not mount"
chroot /root /usr/bin/env VMTEST_FIRMWARE="$(cat /firmware.path)" /bin/sh "$(cat /guest.path)" > /root/vmtest-out/guest.log 2>&1
echo "vmtest: guest script exited with $?" >> /root/vmtest-out/guest.log
sync
poweroff -f
