# bootmedic — `make demo` shows the main job, `make test` runs every test.
SHELL := /bin/bash
export PATH := $(PATH):/opt/swift/usr/bin

SWIFT      ?= swift
PREFIX     ?= /usr/local
DESTDIR    ?=
BUILD_FLAGS ?=
# The real bootloader files the tests and benchmarks read, found once for every target below.
export BOOTMEDIC_FIRMWARE_DIR := $(shell scripts/firmware-dir.sh 2>/dev/null)

.PHONY: all deps build release test tsan fuzz demo bench load vmtest deb install uninstall clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	$(SWIFT) build $(BUILD_FLAGS)

# The release binary carries the Swift runtime and FoundationEssentials in itself: it runs on a bench PC that has
# no Swift toolchain, and starts in half the time (no dynamic symbol binding; README, Speed). The
# toolchain's lld links it: gold repeats glibc's warnings about functions the static runtime uses.
# The runtime's C++ (libstdc++) is linked in too: the toolchain asks for -lstdc++, and a folder searched
# first that holds only libstdc++.a answers it, so no libstdc++.so is loaded and initialised at each start
# (about a millisecond of a 9 ms start-up; README, Speed).
STATIC_CXX := $(CURDIR)/.build/static-libstdc++
release: deps
	mkdir -p $(STATIC_CXX) && ln -sf "$$(gcc -print-file-name=libstdc++.a)" $(STATIC_CXX)/libstdc++.a
	$(SWIFT) build -c release --product bootmedic --static-swift-stdlib -Xswiftc -use-ld=lld -Xswiftc -L$(STATIC_CXX) $(BUILD_FLAGS)

test: deps
	$(SWIFT) build --build-tests $(BUILD_FLAGS)
	$(SWIFT) test --skip-build $(BUILD_FLAGS)

# The whole suite under ThreadSanitizer, in a build folder of its own; any report fails it. One test at a
# time: the sanitizer slows code five to fifteen times, and the tests that drive pseudo-terminals in real
# time need the two cores to themselves (the agent's own threads still run side by side).
tsan: deps
	$(SWIFT) build --build-tests --sanitize=thread --scratch-path .build-tsan $(BUILD_FLAGS)
	TSAN_OPTIONS="halt_on_error=1 $(TSAN_OPTIONS)" $(SWIFT) test --skip-build --no-parallel --sanitize=thread --scratch-path .build-tsan $(BUILD_FLAGS)

# libFuzzer on every fuzz target, FUZZ_SECONDS each (default 60); see scripts/fuzz.sh.
fuzz: deps
	@scripts/fuzz.sh

demo: build
	@scripts/demo.sh

bench: release
	@scripts/bench.sh

load: release
	@scripts/load.sh

# The Debian package, dist/bootmedic_<version>_<arch>.deb, from debian/ with debhelper; lintian must
# report no error (the warnings kept are listed in the README).
deb: release
	@scripts/install-deps.sh --deb
	dpkg-checkbuilddeps
	rm -rf dist && mkdir -p dist
	debian/rules clean
	debian/rules binary
	lintian --fail-on error dist/bootmedic_*.deb

# A real kernel's USB stack, udevd and systemd under QEMU (see scripts/vmtest.sh), with the package installed.
vmtest: deb
	@scripts/install-deps.sh --vm
	@scripts/vmtest.sh

# FHS places; DESTDIR is honoured. The unit and udev rules go where an administrator's additions live.
BINDIR      = $(PREFIX)/bin
DOCDIR      = $(PREFIX)/share/doc/bootmedic
UNITDIR     = /etc/systemd/system
UDEVDIR     = /etc/udev/rules.d
CATALOGDIR  = /usr/lib/systemd/catalog
SYSUSERSDIR = /usr/lib/sysusers.d
CONFDIR     = /etc/bootmedic
# The binary to install; the virtual bench names the one it already built.
BOOTMEDIC_BIN ?= $$($(SWIFT) build -c release --show-bin-path)/bootmedic

install: release
	install -D -m 0755 "$(BOOTMEDIC_BIN)" "$(DESTDIR)$(BINDIR)/bootmedic"
	install -D -m 0644 udev-rules/60-bootmedic.rules "$(DESTDIR)$(UDEVDIR)/60-bootmedic.rules"
	sed 's|/usr/bin/bootmedic|$(BINDIR)/bootmedic|' systemd/bootmedic.service > bootmedic.service.tmp
	install -D -m 0644 bootmedic.service.tmp "$(DESTDIR)$(UNITDIR)/bootmedic.service" && rm -f bootmedic.service.tmp
	install -D -m 0644 systemd/bootmedic.catalog "$(DESTDIR)$(CATALOGDIR)/bootmedic.catalog"
	install -D -m 0644 systemd/bootmedic.sysusers "$(DESTDIR)$(SYSUSERSDIR)/bootmedic.conf"
	install -D -m 0644 README.md "$(DESTDIR)$(DOCDIR)/README.md"
	@if [ ! -e "$(DESTDIR)$(CONFDIR)/rules.toml" ]; then install -D -m 0644 config/rules.toml "$(DESTDIR)$(CONFDIR)/rules.toml"; \
	  else echo "kept $(DESTDIR)$(CONFDIR)/rules.toml"; fi
	@if [ -z "$(DESTDIR)" ]; then systemd-sysusers 2>/dev/null || true; journalctl --update-catalog 2>/dev/null || true; \
	  udevadm control --reload 2>/dev/null || true; systemctl daemon-reload 2>/dev/null || true; fi

uninstall:
	rm -f "$(DESTDIR)$(BINDIR)/bootmedic" "$(DESTDIR)$(UDEVDIR)/60-bootmedic.rules" "$(DESTDIR)$(UNITDIR)/bootmedic.service" \
	  "$(DESTDIR)$(CATALOGDIR)/bootmedic.catalog" "$(DESTDIR)$(SYSUSERSDIR)/bootmedic.conf" "$(DESTDIR)$(DOCDIR)/README.md"
	@echo "left $(DESTDIR)$(CONFDIR)/rules.toml and /var/lib/bootmedic (backups) in place"

clean:
	rm -rf .build dist debian/bootmedic debian/.debhelper debian/files debian/*.substvars debian/*.debhelper.log debian/debhelper-build-stamp
