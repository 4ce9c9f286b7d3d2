#!/usr/bin/env bash
# Installs the Debian packages bootmedic builds and tests with (`--vm`: and boots its VM test with).
# Idempotent and quiet when all are present.
set -euo pipefail

packages=(
  pkg-config
  libusb-1.0-0-dev     # CLibUSB
  libudev-dev          # CLibUDev
  libsystemd-dev       # CSystemd
  avrdude              # reference client and part database (/etc/avrdude.conf) in tests
  python3-intelhex     # independent Intel HEX parser in tests
  systemd              # journald, journalctl, systemd-analyze for the agent's tests
  udev                 # udevadm, to check the rules file
  arduino-core-avr     # the Arduino bootloaders and boards.txt the shipped rules and `rules import` use
  golang-github-burntsushi-toml-dev  # the toml-test corpus (valid and invalid TOML 1.0 documents) the parser is tested on
  systemd-journal-remote  # a workshop's collector: the test of `status --directory` on a collected journal
  tmux                 # the test of `status --follow` as a terminal shows it
)
# `--deb` adds what `make deb` builds and checks the package with.
if [ "${1:-}" = "--deb" ]; then
  packages+=(debhelper dpkg-dev fakeroot lintian)
fi
# `--vm` adds what `make vmtest` boots a real kernel with (scripts/vmtest.sh).
if [ "${1:-}" = "--vm" ]; then
  packages+=(
    qemu-system-x86    # TCG is enough: no KVM needed
    busybox-static     # the initramfs
    kmod               # depmod/modprobe on the unpacked kernel package
    cpio               # packs the initramfs
    stlink-tools       # st-flash, the reference client for the ST-Link gadget
    openocd            # the other reference client: reads back a Bluepill clone through the gadget
    dfu-programmer     # the reference client for the Atmel DFU bootloader gadget
    teensy-loader-cli  # the reference client for the HalfKay gadget
    dfu-util           # the reference client for the STM32duino (Maple) and STM32 system (DfuSe) bootloaders
    modemmanager       # as a desktop bench PC runs it: it must leave the serial programmers alone
  )
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
