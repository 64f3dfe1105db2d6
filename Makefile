# berth - one non-recursive Makefile.
#   make [O=DIR] [V=1] [CROSS_COMPILE=aarch64-linux-gnu-] [SANITIZE=address,undefined] [WERROR=1]
# Outputs go to $(O) (default build/); nothing is written into the source tree.

O ?= build
V ?= 0
CROSS_COMPILE ?=
SANITIZE ?=
WERROR ?=
PREFIX ?= /usr/local
DESTDIR ?=
DEFCONFIG ?= ports/linux/configs/gateway_defconfig
PYTHON := /usr/bin/python3
KCONFIG := Kconfig

ifeq ($(origin CC),default)
CC := $(CROSS_COMPILE)gcc
endif
STRIP ?= $(CROSS_COMPILE)strip
ifneq ($(CROSS_COMPILE),)
STRIP := $(CROSS_COMPILE)strip
endif

ifeq ($(V),1)
Q :=
quiet = @true
else
Q := @
quiet = @printf '  %-7s %s\n'
endif

# The user's CFLAGS/LDFLAGS add to these; they cannot drop them.
# Size first (a gateway's flash and RAM); the scheduler's per-request path,
# measured in instructions by bench-sched-cost, is built for speed (HOT_CFLAGS).
# _FORTIFY_SOURCE (Debian's linker adds RELRO by default; BIND_NOW, -z now, would cost the
# stripped berthd a 4 KB page of its 300 KB budget: lintian's hardening-no-bindnow is an info tag).
CFLAGS ?= -Os -g -D_FORTIFY_SOURCE=2
HOT_CFLAGS ?= -O2
# C without exceptions needs no unwind tables (.eh_frame): 45 KB of a stripped berthd. The
# debug build keeps its DWARF frames (-g), so gdb still unwinds; a stripped binary's core
# dump does not (docs/footprint.md).
SIZE_CFLAGS ?= -fno-asynchronous-unwind-tables -fno-unwind-tables
LDFLAGS ?=
WARNINGS := -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes \
	-Wvla -Wundef -Wno-unused-parameter
AUTOCONF := $(O)/include/generated/autoconf.h
REQ_CFLAGS := -std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -I. -I$(O)/include -imacros $(AUTOCONF) \
	-include agent/base/kconfig.h $(WARNINGS) -MMD -MP -fno-common \
	-ffunction-sections -fdata-sections
ifneq ($(WERROR),)
REQ_CFLAGS += -Werror
endif
ifneq ($(SANITIZE),)
REQ_CFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
REQ_LDFLAGS += -fsanitize=$(SANITIZE)
endif
FINAL_CFLAGS = $(REQ_CFLAGS) $(SIZE_CFLAGS) $(CFLAGS) $(OBJ_CFLAGS)
# Relative relocations packed (DT_RELR, binutils >= 2.38 and glibc >= 2.36, as in Debian 12):
# about 8 KB off berthd's file and its relocated pages; left out where the linker lacks it.
RELR_LDFLAGS := $(shell echo 'int main(void){return 0;}' | $(CC) -x c - -o /dev/null -Wl,--fatal-warnings \
	-Wl,-z,pack-relative-relocs 2>/dev/null && echo -Wl,-z,pack-relative-relocs)
FINAL_LDFLAGS = $(REQ_LDFLAGS) $(RELR_LDFLAGS) $(LDFLAGS) -Wl,--as-needed -Wl,--gc-sections
LIBS := -lmosquitto -lsqlite3 -lcjson -lcurl -lmicrohttpd -lcrypto -lm

# --- sources -------------------------------------------------------------
CORE_SRCS := $(wildcard agent/*.c agent/*/*.c)
# the programs' mains are linked on their own; berthctl's helpers live in the core library
CORE_SRCS := $(filter-out agent/cmd/berthd.c agent/cmd/berthctl.c agent/cmd/berth-sim.c,$(CORE_SRCS))
# the site cluster is added below when CONFIG_SITE is set; berth-sim's site mode (sim_site.c, over
# consensus_sim.c, libraft's in-memory fixture) is linked into berth-sim and test_site_sim only
CORE_SRCS := $(filter-out agent/site/% agent/cmd/sim_site.c,$(CORE_SRCS))
# ports/posix holds what both ports do the same way (files, listening sockets)
LINUX_SRCS := $(wildcard ports/linux/*.c ports/posix/*.c)
SIM_SRCS := $(wildcard ports/sim/*.c ports/posix/*.c)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_LINUX_SRCS := $(wildcard tests/unit/linux/test_*.c)

obj = $(patsubst %.c,$(O)/obj/%.o,$(1))
CORE_LIB := $(O)/lib/libberth-core.a
LINUX_LIB := $(O)/lib/libberth-linux.a
SIM_LIB := $(O)/lib/libberth-sim.a

BINS := $(O)/berthd $(O)/berth-sim $(O)/berthctl
UNIT_BINS := $(patsubst tests/unit/%.c,$(O)/tests/%,$(UNIT_SRCS) $(UNIT_LINUX_SRCS))
TEST_RUNNER ?=

.SECONDARY:
.PHONY: all test unit-tests check bench demo install clean menuconfig savedefconfig \
	defconfig integration fuzz fuzz-smoke cross-arm64 cross-armhf minimal-build site-build bench-site \
	layering print-% help deb deb-test deb-test-arm deb-test-systemd soak crashpoints
all: $(BINS)

# --- Kconfig ------------------------------------------------------------
$(O)/.config:
	$(quiet) DEFCONF $(DEFCONFIG)
	$(Q)mkdir -p $(O)
	$(Q)KCONFIG_CONFIG=$@ $(PYTHON) -m defconfig --kconfig $(KCONFIG) $(DEFCONFIG) >/dev/null

$(AUTOCONF) $(O)/auto.conf: $(O)/.config $(KCONFIG)
	$(quiet) GENCONF $@
	$(Q)mkdir -p $(dir $(AUTOCONF))
	$(Q)KCONFIG_CONFIG=$(O)/.config $(PYTHON) -m olddefconfig $(KCONFIG) >/dev/null
	$(Q)KCONFIG_CONFIG=$(O)/.config $(PYTHON) -m genconfig --header-path $(AUTOCONF) \
		--config-out $(O)/auto.conf $(KCONFIG)

%_defconfig:
	$(if $(wildcard ports/*/configs/$@),,$(error no preset $@; see ports/*/configs/))
	$(Q)mkdir -p $(O)
	$(Q)KCONFIG_CONFIG=$(O)/.config $(PYTHON) -m defconfig --kconfig $(KCONFIG) \
		$(firstword $(wildcard ports/*/configs/$@))
menuconfig:
	$(Q)mkdir -p $(O)
	$(Q)KCONFIG_CONFIG=$(O)/.config $(PYTHON) -m menuconfig $(KCONFIG)
savedefconfig: $(O)/.config
	$(Q)KCONFIG_CONFIG=$(O)/.config $(PYTHON) -m savedefconfig --kconfig $(KCONFIG) --out $(O)/defconfig
	@echo "wrote $(O)/defconfig"

# Goals that must work before dependencies are installed never read it.
ifeq ($(filter clean menuconfig savedefconfig %_defconfig check demo help,$(MAKECMDGOALS)),)
-include $(O)/auto.conf
endif
# The site cluster (agent/site/) and its libraries, when configured.
# The pure parts (state machine, placement) are always built and unit-tested.
CORE_SRCS += agent/site/sitestate.c agent/site/placement.c
SIM_SITE_OBJS :=
ifeq ($(CONFIG_SITE),y)
CORE_SRCS += agent/site/consensus.c agent/site/site.c
LIBS += -lraft -luv
SIM_SITE_OBJS := $(call obj,agent/cmd/sim_site.c agent/site/consensus_sim.c)
$(O)/tests/test_site_sim: $(call obj,agent/site/consensus_sim.c)
$(O)/tests/test_site_sim: EXTRA_OBJS = $(call obj,agent/site/consensus_sim.c)
else
UNIT_BINS := $(filter-out %/test_site_sim,$(UNIT_BINS))
endif

# --- compile and link ----------------------------------------------------
$(O)/obj/%.o: %.c $(AUTOCONF)
	$(quiet) CC $<
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(FINAL_CFLAGS) -c -o $@ $<

$(call obj,agent/infer/sched.c): OBJ_CFLAGS = $(HOT_CFLAGS)
$(call obj,agent/infer/sched_mc.c): OBJ_CFLAGS = $(HOT_CFLAGS)
$(CORE_LIB): $(call obj,$(CORE_SRCS))
$(LINUX_LIB): $(call obj,$(LINUX_SRCS))
$(SIM_LIB): $(call obj,$(SIM_SRCS))
$(O)/lib/%.a:
	$(quiet) AR $@
	$(Q)mkdir -p $(dir $@)
	$(Q)rm -f $@ && $(CROSS_COMPILE)ar rcs $@ $^

link = $(CC) $(FINAL_LDFLAGS) -o $@ $(1) -Wl,--start-group $(2) -Wl,--end-group $(LIBS)

$(O)/berthd: $(call obj,agent/cmd/berthd.c) $(CORE_LIB) $(LINUX_LIB)
	$(quiet) LD $@
	$(Q)$(call link,$<,$(CORE_LIB) $(LINUX_LIB))
$(O)/berthctl: $(call obj,agent/cmd/berthctl.c) $(CORE_LIB) $(LINUX_LIB)
	$(quiet) LD $@
	$(Q)$(call link,$<,$(CORE_LIB) $(LINUX_LIB))
$(O)/berth-sim: $(call obj,agent/cmd/berth-sim.c) $(SIM_SITE_OBJS) $(CORE_LIB) $(SIM_LIB)
	$(quiet) LD $@
	$(Q)$(call link,$< $(SIM_SITE_OBJS),$(CORE_LIB) $(SIM_LIB))

# Unit tests: tests/unit/test_X.c runs the core on the sim port;
# tests/unit/linux/test_X.c tests the linux port's parsers against fixtures.
$(O)/tests/linux/%: $(O)/obj/tests/unit/linux/%.o $(CORE_LIB) $(LINUX_LIB)
	$(quiet) LD $@
	$(Q)mkdir -p $(dir $@)
	$(Q)$(call link,$<,$(CORE_LIB) $(LINUX_LIB)) -lcmocka
$(O)/tests/%: $(O)/obj/tests/unit/%.o $(CORE_LIB) $(SIM_LIB)
	$(quiet) LD $@
	$(Q)mkdir -p $(dir $@)
	$(Q)$(call link,$< $(EXTRA_OBJS),$(CORE_LIB) $(SIM_LIB)) -lcmocka

unit-tests: $(UNIT_BINS)
test: unit-tests
	$(Q)TEST_RUNNER="$(TEST_RUNNER)" tests/run-unit.sh $(UNIT_BINS)

# --- the whole check, as CI runs it -----------------------------------------
check:
	$(Q)scripts/check-layering.sh
	$(Q)scripts/install-deps.sh
	$(Q)$(MAKE) --no-print-directory WERROR=1 all
	$(Q)tests/size-check.sh $(O)/berthd $(STRIP)
	$(Q)tests/sim-fixture.sh $(O)
	$(Q)$(MAKE) --no-print-directory minimal-build
	$(Q)$(MAKE) --no-print-directory site-build
	$(Q)$(MAKE) --no-print-directory O=$(O)/asan SANITIZE=address,undefined WERROR=1 test
	$(Q)$(MAKE) --no-print-directory fuzz-smoke
	$(Q)scripts/integration.sh $(O)
	$(Q)$(MAKE) --no-print-directory cross-arm64
	$(Q)$(MAKE) --no-print-directory cross-armhf
	$(Q)$(MAKE) --no-print-directory deb
	$(Q)tests/summary.sh

# Includes, library homes, layers and sizes (docs/development.md); first in check.
layering:
	$(Q)scripts/check-layering.sh

# The minimal preset (no local API, forecaster, TLS or watchdog) must keep building.
# The site preset (the gateway plus the site cluster): built, its simulated site
# run; the site integration tests and bench-site use $(O)/site/berthd.
site-build:
	$(Q)$(MAKE) --no-print-directory O=$(O)/site site_defconfig >/dev/null
	$(Q)$(MAKE) --no-print-directory O=$(O)/site WERROR=1 all $(O)/site/tests/test_site_sim
	$(Q)$(O)/site/tests/test_site_sim >/dev/null 2>&1 || { $(O)/site/tests/test_site_sim; exit 1; }
	$(Q)tests/sim-fixture.sh $(O)/site --site
bench-site: site-build
	$(Q)tests/bench/bench-site.sh $(O)/site

minimal-build:
	$(Q)$(MAKE) --no-print-directory O=$(O)/minimal minimal_defconfig >/dev/null
	$(Q)$(MAKE) --no-print-directory O=$(O)/minimal WERROR=1 all
	$(Q)tests/size-check.sh $(O)/minimal/berthd $(STRIP)

cross-arm64:
	$(Q)$(MAKE) --no-print-directory O=$(O)/arm64 CROSS_COMPILE=aarch64-linux-gnu- WERROR=1 all
	$(Q)$(MAKE) --no-print-directory O=$(O)/arm64 CROSS_COMPILE=aarch64-linux-gnu- WERROR=1 test \
		TEST_RUNNER="qemu-aarch64-static -L /usr/aarch64-linux-gnu"
	$(Q)qemu-aarch64-static -L /usr/aarch64-linux-gnu $(O)/arm64/berthd --version

cross-armhf:
	$(Q)$(MAKE) --no-print-directory O=$(O)/armhf CROSS_COMPILE=arm-linux-gnueabihf- WERROR=1 all
	$(Q)$(MAKE) --no-print-directory O=$(O)/armhf CROSS_COMPILE=arm-linux-gnueabihf- WERROR=1 test \
		TEST_RUNNER="qemu-arm-static -L /usr/arm-linux-gnueabihf"
	$(Q)qemu-arm-static -L /usr/arm-linux-gnueabihf $(O)/armhf/berthd --version

integration: all
	$(Q)scripts/integration.sh $(O)

# The long reliability runs (docs/reliability.md); make check runs short versions of both
# (test-soak for 120 s, test-store-crashpoints at 20 points).
soak: all
	$(Q)SOAK_S=$${SOAK_S:-1800} INTEGRATION_TIMEOUT=$$(( $${SOAK_S:-1800} + 600 )) scripts/integration.sh $(O) soak
crashpoints: all
	$(Q)CRASH_POINTS=$${CRASH_POINTS:-200} INTEGRATION_TIMEOUT=7200 scripts/integration.sh $(O) store-crashpoints

# The reference inference worker runs in test containers on this host: host gcc, static.
$(O)/worker: tests/fixtures/worker/worker.c
	$(quiet) HOSTCC $@
	$(Q)scripts/build-worker-image.sh $(O) >/dev/null

# --- fuzzing (libFuzzer, clang) ------------------------------------------
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_O := $(O)/fuzz
fuzz-build:
	$(Q)$(MAKE) --no-print-directory O=$(FUZZ_O) CC=clang SANITIZE=address,undefined,fuzzer-no-link \
		$(patsubst tests/fuzz/%.c,$(FUZZ_O)/fuzz/%,$(FUZZ_SRCS))
$(O)/fuzz/%: $(O)/obj/tests/fuzz/%.o $(CORE_LIB) $(SIM_LIB)
	$(quiet) LD $@
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(FINAL_LDFLAGS) -fsanitize=fuzzer -o $@ $< -Wl,--start-group $(CORE_LIB) $(SIM_LIB) -Wl,--end-group $(LIBS)
fuzz-smoke: fuzz-build
	$(Q)FUZZ_SECONDS=$${FUZZ_SECONDS:-10} tests/fuzz/run.sh $(FUZZ_O)/fuzz
fuzz: fuzz-build
	$(Q)FUZZ_SECONDS=$${FUZZ_SECONDS:-300} tests/fuzz/run.sh $(FUZZ_O)/fuzz

# --- benchmarks and demo -----------------------------------------------
BENCHES := $(patsubst tests/bench/bench-%.sh,bench-%,$(wildcard tests/bench/bench-*.sh))
bench: $(BENCHES)
bench-%: all
	$(Q)tests/bench/bench-$*.sh $(O)
demo:
	$(Q)scripts/demo.sh $(O)

# --- install ---------------------------------------------------------------
# Never overwrites an operator's /etc/berth files; without an example
# deployments file in the tree, an empty (valid) one is written.
DOCDIR := $(PREFIX)/share/doc/berth
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)/etc/berth $(DESTDIR)/lib/systemd/system $(DESTDIR)$(DOCDIR)
	install -d -m 0700 $(DESTDIR)/var/lib/berth
	install -m 0755 $(O)/berthd $(O)/berthctl $(DESTDIR)$(PREFIX)/bin/
	$(STRIP) $(DESTDIR)$(PREFIX)/bin/berthd $(DESTDIR)$(PREFIX)/bin/berthctl
	sed -e 's|@BINDIR@|$(PREFIX)/bin|g' -e 's|@DOCDIR@|$(DOCDIR)|g' ports/linux/berthd.service.in \
		> $(DESTDIR)/lib/systemd/system/berthd.service
	install -m 0644 $(wildcard README.md docs/*.md) $(DESTDIR)$(DOCDIR)/
	test -e $(DESTDIR)/etc/berth/config.json || install -m 0640 docs/examples/config.json $(DESTDIR)/etc/berth/config.json
	test -e $(DESTDIR)/etc/berth/deployments.json || { if [ -f docs/examples/deployments.json ]; then \
		install -m 0640 docs/examples/deployments.json $(DESTDIR)/etc/berth/deployments.json; else \
		printf '{"version":1,"deployments":[]}\n' > $(DESTDIR)/etc/berth/deployments.json && \
		chmod 0640 $(DESTDIR)/etc/berth/deployments.json; fi; }

# --- Debian packages (docs/packaging.md) ------------------------------------
# berth_<version>-<DEB_REVISION>_<arch>.deb for amd64, arm64 and armhf into $(O)/debs, each
# checked by lintian (remaining tags are overridden with a reason in ports/linux/debian/).
DEB_ARCHES := amd64 arm64 armhf
DEB_NATIVE := $(shell dpkg --print-architecture 2>/dev/null)
deb_dir = $(if $(filter $(1),$(DEB_NATIVE)),$(O),$(O)/$(1))
deb_cross = $(if $(filter $(1),$(DEB_NATIVE)),,$(if $(filter arm64,$(1)),aarch64-linux-gnu-,arm-linux-gnueabihf-))
# One lintian run for the three (it takes about 20 s to start, whatever it checks).
lint_debs = out=$$(lintian --fail-on warning $(1) 2>&1); rc=$$?; \
	echo "$$out" | grep -v '^running with root privileges' || true; \
	[ $$rc -eq 0 ] && echo "deb: lintian: $(notdir $(1)) clean" || \
	{ echo "deb: lintian found problems in $(notdir $(1))"; exit 1; }
deb: $(addprefix deb-build-,$(DEB_ARCHES))
	$(Q)$(call lint_debs,$(foreach a,$(DEB_ARCHES),$(O)/debs/berth_*_$(a).deb))
deb-build-%:
	$(Q)$(MAKE) --no-print-directory O=$(call deb_dir,$*) CROSS_COMPILE=$(call deb_cross,$*) \
		WERROR=1 $(call deb_dir,$*)/berthd $(call deb_dir,$*)/berthctl
	$(Q)scripts/mkdeb.sh $(call deb_dir,$*) $* $(O)/debs
deb-%: deb-build-%
	$(Q)$(call lint_debs,$(O)/debs/berth_*_$*.deb)
# The packages in fresh Debian 12 roots (tests/deb-install.sh): install, upgrade, start,
# remove and purge on the native architecture; dpkg -i and the programs under qemu on the others.
deb-test: deb-test-$(DEB_NATIVE)
deb-test-arm: deb-test-arm64 deb-test-armhf
deb-test-%: deb-%
	$(Q)tests/deb-install.sh $(O) $*
# The native package under a real systemd (PID 1 in a podman container, tests/deb-systemd.sh):
# Type=notify, the watchdog, restarts, the system call filter, the exposure score.
deb-test-systemd: deb-$(DEB_NATIVE)
	$(Q)tests/deb-systemd.sh $(O)

clean:
	rm -rf $(O)

help:
	@printf '%s\n' \
	  'berth make targets (add O=DIR for an out-of-tree build, V=1 for the commands):' \
	  '  all (default)        build/berthd, build/berthctl, build/berth-sim' \
	  '  demo                 the whole agent on a local broker and engine, with a summary (DEMO_KEEP=1 keeps it)' \
	  '  check                every test, as CI runs it (installs missing Debian packages first)' \
	  '  test                 unit tests (TEST_RUNNER= for qemu)' \
	  '  integration          integration tests against a real broker and engine' \
	  '  fuzz-smoke | fuzz    libFuzzer targets, 10 s each | 300 s each' \
	  '  bench | bench-NAME   benchmarks, each ending with RESULT key=value' \
	  '  cross-arm64          arm64 build and unit tests under qemu (CROSS_COMPILE=aarch64-linux-gnu-)' \
	  '  cross-armhf          armhf build and unit tests under qemu (CROSS_COMPILE=arm-linux-gnueabihf-)' \
	  '  minimal-build        the minimal preset must build and fit' \
	  '  deb | deb-ARCH       berth_<version>-1_<arch>.deb for amd64, arm64, armhf in $$(O)/debs, lintian-checked' \
	  '  deb-test             the native package installed, upgraded, started, removed, purged in a Debian 12 root' \
	  '  deb-test-arm         the arm64 and armhf packages in emulated Debian roots (about 20 min each the first time)' \
	  '  deb-test-systemd     the native package under a real systemd (PID 1 in a podman container)' \
	  '  install              DESTDIR=... PREFIX=...: binaries, systemd unit, example config' \
	  '  gateway_defconfig | minimal_defconfig | menuconfig | savedefconfig   compile-time configuration' \
	  '  clean                remove $$(O)' \
	  '  help                 this list'

print-%:
	@echo '$($*)'

-include $(shell find $(O)/obj -name '*.d' 2>/dev/null)
