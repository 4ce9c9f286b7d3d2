# bootmedic — `make demo` shows the main job, `make test` runs every test.
SHELL := /bin/bash
export PATH := $(PATH):/opt/swift/usr/bin

SWIFT      ?= swift
PREFIX     ?= /usr/local
DESTDIR    ?=
BUILD_FLAGS ?=

.PHONY: all deps build release test demo bench clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	$(SWIFT) build $(BUILD_FLAGS)

release: deps
	$(SWIFT) build -c release $(BUILD_FLAGS)

test: deps
	$(SWIFT) build --build-tests $(BUILD_FLAGS)
	$(SWIFT) test --skip-build $(BUILD_FLAGS)

demo: build
	@scripts/demo.sh

bench: release
	@scripts/bench.sh

clean:
	rm -rf .build
