SWIFT ?= swift

.PHONY: all build test run bench clean

all: build

build:
	$(SWIFT) build

# The whole test suite (unit tests and the fixtures under Fixtures/).
test:
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

# The main job on a bundled scenario.
run:
	$(SWIFT) run --quiet smmuv3 demo

# Throughput of the hot paths, release build: one "BENCH <name> <value> <unit>" line each.
bench:
	$(SWIFT) run -c release smmuv3-bench

clean:
	rm -rf .build
