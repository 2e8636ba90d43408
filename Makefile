SWIFT ?= swift

.PHONY: all build test run bench sanitize clean

all: build

build:
	$(SWIFT) build

# The whole test suite (unit tests and the fixtures under Fixtures/).
test:
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

# The main job on a bundled fixture: the SVA story, step by step.
run:
	$(SWIFT) run --quiet smmuv3 run --story Fixtures/sva-demo.fixture

# Throughput of the hot paths, release build: one "BENCH <name> <value> <unit>" line each.
bench:
	$(SWIFT) run -c release smmuv3-bench

# The test suite under AddressSanitizer, then ThreadSanitizer (slow). The suppression files
# in .ci/ name the toolchain false positives they exclude.
sanitize:
	$(SWIFT) build --build-tests --sanitize=address --scratch-path .build-asan
	ASAN_OPTIONS=suppressions=$(CURDIR)/.ci/asan.supp LSAN_OPTIONS=suppressions=$(CURDIR)/.ci/lsan.supp \
		$(SWIFT) test --skip-build --sanitize=address --scratch-path .build-asan
	$(SWIFT) build --build-tests --sanitize=thread --scratch-path .build-tsan
	$(SWIFT) test --skip-build --sanitize=thread --scratch-path .build-tsan

clean:
	rm -rf .build
