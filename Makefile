# nestvm: plain GNU make.
#   make          ./nestvm (static, so it also runs inside busybox guests)
#   make check    install what tests need, build with ASan/UBSan, run all tests
#                 (but the Debian template lab: make check-debian)
#   make demo     the main job: show nestvm running a nested stack
.DEFAULT_GOAL := all

# Short build lines; V=1 shows full commands.
ifeq ($(V),1)
Q :=
say := @true
else
Q := @
say := @printf '  %-6s %s\n'
endif

CC      ?= gcc
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)

WARN    := -Wall -Wextra -Werror
BASE    := -std=gnu11 $(WARN) -Isrc -I.cache/slirp/include -pthread -DNESTVM_VERSION='"$(VERSION)"'
CFLAGS  ?= -O2 -g
# The release binary: a static PIE (so ASLR holds for it too), with stack
# canaries and glibc's checked string and I/O functions.
HARDEN  := -fPIE -fstack-protector-strong -D_FORTIFY_SOURCE=2
SANITIZE := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer

# The layers the unit tests link against; the lab host (a module of its own,
# with its init script assembled in) and the subcommands only go into nestvm.
CORE_SRCS := $(wildcard src/util/*.c src/mem/*.c src/block/*.c src/kvm/*.c src/boot/*.c src/devices/*.c src/net/*.c \
                        src/virtio/*.c src/vmm/*.c src/nested/*.c src/lab/*.c)
LABHOST_SRCS := $(wildcard src/labhost/*.c src/labhost/*.S)
CLI_SRCS  := $(wildcard src/cli/*.c)

REL_OBJS  := $(patsubst %,build/release/%.o,$(CORE_SRCS) $(LABHOST_SRCS) $(CLI_SRCS))
SAN_CORE  := $(patsubst %,build/asan/%.o,$(CORE_SRCS))
SAN_OBJS  := $(SAN_CORE) $(patsubst %,build/asan/%.o,$(LABHOST_SRCS) $(CLI_SRCS))
# ThreadSanitizer build (make tsan): nestvm and the unit tests.
# (-Wno-tsan: the virtqueue fences order stores the guest sees, which TSan
# does not model; it has no say on them.)
TSAN      := -fsanitize=thread -fno-omit-frame-pointer -Wno-tsan
TSAN_CORE := $(patsubst %,build/tsan/%.o,$(CORE_SRCS))
TSAN_OBJS := $(TSAN_CORE) $(patsubst %,build/tsan/%.o,$(LABHOST_SRCS) $(CLI_SRCS))

GUEST_ELF   := build/guest/testguest.elf
GUEST_FLAGS := -std=gnu11 $(WARN) -Isrc -O2 -ffreestanding -fno-pic -fno-pie -nostdlib \
               -static -no-pie -mno-red-zone -mgeneral-regs-only -fno-stack-protector \
               -fno-asynchronous-unwind-tables -Wl,-T,guest/link.ld -Wl,--build-id=none \
               -Wl,-z,noexecstack

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
TSAN_UNIT := $(patsubst tests/unit/%.c,build/tsan/unit/%,$(UNIT_SRCS))
UNIT_BINS := $(patsubst tests/unit/%.c,build/unit/%,$(UNIT_SRCS))

.PHONY: all check check-debian demo deps kernels clean fuzz tsan
all: nestvm $(GUEST_ELF)

# libslirp (the switch's NAT) is built static from Debian's source into
# .cache/slirp by scripts/build-slirp.sh; it needs glib (static in nestvm).
SLIRP_DIR := .cache/slirp
SLIRP_LIB := $(SLIRP_DIR)/lib/libslirp.a
LIBS := -ljson-c -lyaml -lsodium -lseccomp -lisofs -ljte -lbz2 -lacl -lz $(SLIRP_LIB) -lglib-2.0 -lpcre2-8 -lm

$(SLIRP_LIB): scripts/build-slirp.sh
	$(say) SLIRP $@
	$(Q)scripts/build-slirp.sh
	$(Q)touch $@

# Lab identities are version 5 UUIDs: SHA-1 from glib, which is linked for
# libslirp anyway.
GLIB_CFLAGS := $(shell pkg-config --cflags glib-2.0 2> /dev/null)
build/release/src/lab/lab.c.o build/asan/src/lab/lab.c.o build/tsan/src/lab/lab.c.o: BASE += $(GLIB_CFLAGS)
build/fuzz/src/lab/lab.c.o: FUZZ_FLAGS += $(GLIB_CFLAGS)

# Only the NAT includes libslirp's header.
build/release/src/net/nat.c.o build/asan/src/net/nat.c.o build/tsan/src/net/nat.c.o \
build/fuzz/src/net/nat.c.o: | $(SLIRP_LIB)

nestvm: $(REL_OBJS)
	$(say) LD $@
	$(Q)$(CC) $(BASE) $(CFLAGS) -static-pie -o $@ $^ $(LIBS)

build/asan/nestvm: $(SAN_OBJS)
	$(say) LD $@
	$(Q)$(CC) $(BASE) -O1 -g $(SANITIZE) -o $@ $^ $(LIBS)

build/tsan/nestvm: $(TSAN_OBJS)
	$(say) LD $@
	$(Q)$(CC) $(BASE) -O1 -g $(TSAN) -o $@ $^ $(LIBS)

build/tsan/%.c.o: %.c
	@mkdir -p $(dir $@)
	$(say) CC $@
	$(Q)$(CC) $(BASE) -O1 -g $(TSAN) -MMD -MP -c -o $@ $<

build/tsan/%.S.o: %.S
	@mkdir -p $(dir $@)
	$(say) AS $@
	$(Q)$(CC) -Isrc -MMD -MP -c -o $@ $<

build/tsan/src/labhost/init_script.S.o: src/labhost/init.sh

build/release/%.c.o: %.c
	@mkdir -p $(dir $@)
	$(say) CC $@
	$(Q)$(CC) $(BASE) $(CFLAGS) $(HARDEN) -MMD -MP -c -o $@ $<

build/asan/%.c.o: %.c
	@mkdir -p $(dir $@)
	$(say) CC $@
	$(Q)$(CC) $(BASE) -O1 -g $(SANITIZE) -MMD -MP -c -o $@ $<

build/release/src/labhost/init_script.S.o build/asan/src/labhost/init_script.S.o: src/labhost/init.sh

build/release/%.S.o: %.S
	@mkdir -p $(dir $@)
	$(say) AS $@
	$(Q)$(CC) -Isrc -MMD -MP -c -o $@ $<

build/asan/%.S.o: %.S
	@mkdir -p $(dir $@)
	$(say) AS $@
	$(Q)$(CC) -Isrc -MMD -MP -c -o $@ $<

$(GUEST_ELF): guest/start.S guest/main.c guest/virtio.c guest/guest.h guest/link.ld \
              src/boot/direct64_abi.h src/devices/testdev_abi.h
	@mkdir -p $(dir $@)
	$(say) GUEST $@
	$(Q)$(CC) $(GUEST_FLAGS) -o $@ guest/start.S guest/main.c guest/virtio.c

# Unit tests and fuzz harnesses link the core layers as an archive, after
# the test doubles of tests/fake/ (e.g. a fake KVM) in an archive of their
# own. The linker takes an archive member only for a symbol still missing,
# so a test that calls a fake's own functions (kvm_fake_*) gets that fake
# in place of the real layer (kvm.o); every other test gets the real one.
FAKE_SRCS := $(wildcard tests/fake/*.c)

build/asan/libcore.a: $(SAN_CORE)
build/asan/libfake.a: $(patsubst %,build/asan/%.o,$(FAKE_SRCS))
build/%.a:
	@mkdir -p $(dir $@)
	$(say) AR $@
	$(Q)rm -f $@ && ar rcs $@ $^

build/tsan/libcore.a: $(TSAN_CORE)
build/tsan/libfake.a: $(patsubst %,build/tsan/%.o,$(FAKE_SRCS))

build/tsan/unit/%: tests/unit/%.c build/tsan/libfake.a build/tsan/libcore.a
	@mkdir -p $(dir $@)
	$(say) TEST $@
	$(Q)$(CC) $(BASE) -O1 -g $(TSAN) -o $@ $< build/tsan/libfake.a build/tsan/libcore.a \
		-lcmocka $(LIBS)

build/unit/%: tests/unit/%.c build/asan/libfake.a build/asan/libcore.a
	@mkdir -p $(dir $@)
	$(say) TEST $@
	$(Q)$(CC) $(BASE) -O1 -g $(SANITIZE) -o $@ $< build/asan/libfake.a build/asan/libcore.a \
		-lcmocka $(LIBS)

# libFuzzer harnesses (fuzz/fuzz_*.c) over the core layers, built with clang.
FUZZ_CC    := clang
FUZZ_FLAGS := -std=gnu11 $(WARN) -Wno-gnu-variable-sized-type-not-at-end -Isrc -I.cache/slirp/include -pthread -DNESTVM_VERSION='"fuzz"' -O1 -g \
              -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
FUZZ_CORE  := $(patsubst %,build/fuzz/%.o,$(CORE_SRCS))
FUZZ_FAKES := $(patsubst %,build/fuzz/%.o,$(FAKE_SRCS))
FUZZ_BINS  := $(patsubst fuzz/%.c,build/fuzz/%,$(wildcard fuzz/fuzz_*.c))
# Kept between builds (make would delete them as intermediate files).
.SECONDARY: $(FUZZ_CORE) $(FUZZ_FAKES)

build/fuzz/libcore.a: $(FUZZ_CORE)
build/fuzz/libfake.a: $(FUZZ_FAKES)

build/fuzz/%.c.o: %.c
	@mkdir -p $(dir $@)
	$(say) FUZZCC $@
	$(Q)$(FUZZ_CC) $(FUZZ_FLAGS) -MMD -MP -c -o $@ $<

build/fuzz/fuzz_%: fuzz/fuzz_%.c build/fuzz/libfake.a build/fuzz/libcore.a
	$(say) FUZZ $@
	$(Q)$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer -o $@ $< build/fuzz/libfake.a \
		build/fuzz/libcore.a $(LIBS)

# make fuzz [FUZZ_SECONDS=N] [FUZZ_RUNS=N]: every harness on its corpus
# (fuzz/corpus/NAME, kept in the repo), for N seconds or N executions each.
FUZZ_SECONDS ?= 60
fuzz: deps
	@$(MAKE) --no-print-directory -j2 $(FUZZ_BINS)
	@scripts/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_RUNS)

# Packages the build and tests need (idempotent; apt-get only when missing).
deps:
	@scripts/deps.sh

# Debian's stock kernels for the lab host and guests, cached in .cache/.
kernels: deps
	@scripts/fetch-kernel.sh generic
	@scripts/fetch-kernel.sh cloud

# make tsan: the unit tests and tier 1 (tests/kvm) with ThreadSanitizer
# builds; a report stops the process (halt_on_error), which fails its test.
tsan: deps
	@$(MAKE) --no-print-directory -j2 all build/tsan/nestvm $(TSAN_UNIT)
	@TSAN_OPTIONS=halt_on_error=1 NESTVM_UNIT_DIR=build/tsan/unit NESTVM=build/tsan/nestvm \
		tests/run-all unit kvm

check: deps
	@$(MAKE) --no-print-directory -j2 all build/asan/nestvm $(UNIT_BINS) $(FUZZ_BINS)
	@scripts/fetch-kernel.sh generic
	@scripts/fetch-kernel.sh cloud
	@tests/run-all

# The Debian template lab (tests/labhost/debian.bats) alone: it builds the
# template, then runs three Debian nodes in the lab host: 14.5 to 18
# minutes, which make check cannot add and stay under 30.
check-debian: deps
	@$(MAKE) --no-print-directory -j2 all
	@scripts/fetch-kernel.sh generic
	@tests/run-all debian

demo: deps
	@$(MAKE) --no-print-directory -j2 all
	@scripts/fetch-kernel.sh generic
	@scripts/fetch-kernel.sh cloud
	@scripts/demo.sh

clean:
	rm -rf build nestvm

-include $(shell find build -name '*.d' 2>/dev/null)
