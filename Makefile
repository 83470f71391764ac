# xborder — one non-recursive Makefile.
#
#   make              build everything under build/
#   make test         build and run every test; last line "N passed, N failed, N skipped"
#   make test SAN=1   the same, built with AddressSanitizer + UBSan (under build/san/)
#   make test T=net/impair   one test (a path under tests/, without extension)
#   make deps         install the Debian packages (deploy/deps.sh)
#   make fuzz         libFuzzer targets (clang)
#   make bench        benchmarks, printed as ratios against a reference
#   make demo HA=1    the active/standby story (deploy/demo/ha.sh)
#   make clean        remove build/
#   make install      binaries, man pages, systemd unit, examples (PREFIX=/usr/local,
#                     DESTDIR; docs/operations.md); make uninstall removes them
#   V=1               show full commands

SAN      ?= 0
V        ?= 0
ifeq ($(SAN),1)
BUILD    ?= build/san
else
BUILD    ?= build
endif

CC       ?= cc
PKGS     := libmnl libsodium libconfig libnftables jansson sqlite3 libmicrohttpd libcrypto \
            libqrencode libpng libcurl
# Evaluated once, lazily: the deps check must run before pkg-config is asked.
PKG_CFLAGS = $(eval PKG_CFLAGS := $$(shell pkg-config --cflags $(PKGS)))$(PKG_CFLAGS)
PKG_LIBS   = $(eval PKG_LIBS := $$(shell pkg-config --libs $(PKGS)))$(PKG_LIBS)

CFLAGS   ?= -O2 -g
XCFLAGS  := -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -I. -MMD -MP \
            -fno-strict-aliasing -fstack-protector-strong
LDLIBS   := -lpthread -lm
ifeq ($(SAN),1)
XCFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS  += -fsanitize=address,undefined
endif

ifeq ($(V),1)
Q :=
say = @true
else
Q := @
say = @printf '  %-6s %s\n'
endif

# Library objects: every module except the files that hold a main().
LIB_SRCS := $(filter-out %_main.c,$(wildcard common/*.c tunnel/*.c policy/*.c gateway/*.c gateway/*/*.c probe/*.c ctl/*.c))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
LIB      := $(BUILD)/libxborder.a
# The device agent (xborder-posture): its own archive, kept out of the
# gateway's library; linked into xborder-posture and the unit tests.
AGENT_SRCS := $(filter-out %_main.c,$(wildcard agent/*.c))
AGENT_OBJS := $(AGENT_SRCS:%.c=$(BUILD)/%.o)
AGENT_LIB  := $(BUILD)/libxbagent.a
# Test tools' engines, linked into the unit tests that check them.
TLIB_SRCS := tests/lib/check.c tests/lib/golden.c tests/lib/wgtest.c tests/tools/impair.c
TLIB_OBJS := $(TLIB_SRCS:%.c=$(BUILD)/%.o)
TLIB      := $(BUILD)/libxbtest.a

# Programs: name := main source file.
PROGS    := xborder-wg xb-gre xb-probe xb-impair xb-pkt xborderd xborderctl xb-ctlfake \
            xborder-posture xb-gwfake xb-sdnotify xb-preport xb-aeadbench xb-dnsq \
            xb-dnsfake xb-nftbench xb-pflood xb-udpflood xb-noioctl xb-etcdtest xb-hsbench
SRC_xborder-wg := tunnel/wg_main.c
SRC_xb-gre   := tunnel/gre_main.c
SRC_xb-impair := tests/tools/impair_main.c tests/tools/impair.c
SRC_xb-pkt    := tests/tools/pkt_main.c
SRC_xborderd := gateway/xborderd_main.c
SRC_xborderctl := ctl/xborderctl_main.c
SRC_xb-ctlfake := tests/tools/ctlfake_main.c
SRC_xborder-posture := agent/xborder-posture_main.c $(AGENT_SRCS)
SRC_xb-gwfake := tests/tools/gwfake_main.c
SRC_xb-sdnotify := tests/tools/sdnotify_main.c
SRC_xb-probe  := probe/probe_main.c
SRC_xb-preport := tests/tools/preport_main.c
SRC_xb-aeadbench := tests/tools/aeadbench_main.c
SRC_xb-dnsq   := tests/tools/dnsq_main.c
SRC_xb-dnsfake := tests/tools/dnsfake_main.c
SRC_xb-nftbench := tests/tools/nftbench_main.c
SRC_xb-pflood := tests/tools/pflood_main.c
SRC_xb-udpflood := tests/tools/udpflood_main.c
SRC_xb-noioctl := tests/tools/noioctl_main.c
SRC_xb-hsbench := tests/tools/hsbench_main.c
SRC_xb-etcdtest := tests/tools/etcdtest_main.c
PROG_BINS := $(PROGS:%=$(BUILD)/bin/%)

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

ALL_OBJS := $(LIB_OBJS) $(foreach p,$(PROGS),$(SRC_$(p):%.c=$(BUILD)/%.o)) \
            $(UNIT_SRCS:%.c=$(BUILD)/%.o) $(TLIB_OBJS) $(AGENT_OBJS)

.SECONDARY:
.PHONY: all test deps deps-auto clean fuzz bench demo demo-clean example-keys install uninstall
all: $(PROG_BINS) $(UNIT_BINS) example-keys

# git keeps no read permissions; xborderd refuses key files others can read.
example-keys:
	$(Q)chmod 600 deploy/examples/keys/*.key deploy/examples/keys/*.psk deploy/examples/keys/*.conf deploy/demo/keys/* 2>/dev/null || true

# Installs what is missing when run as root; otherwise says what is missing.
deps-auto:
	$(Q)deploy/deps.sh --auto

deps:
	deploy/deps.sh

$(BUILD)/%.o: %.c | deps-auto
	$(say) CC $<
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(XCFLAGS) $(CFLAGS) $(PKG_CFLAGS) -c -o $@ $<

$(LIB): $(LIB_OBJS)
	$(say) AR $@
	$(Q)rm -f $@
	$(Q)ar rcs $@ $^

define prog_rule
$(BUILD)/bin/$(1): $(SRC_$(1):%.c=$(BUILD)/%.o) $(LIB)
	$$(say) LD $$@
	$$(Q)mkdir -p $$(@D)
	$$(Q)$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(PKG_LIBS) $$(LDLIBS)
endef
$(foreach p,$(PROGS),$(eval $(call prog_rule,$(p))))

$(AGENT_LIB): $(AGENT_OBJS)
	$(say) AR $@
	$(Q)rm -f $@
	$(Q)ar rcs $@ $^

$(TLIB): $(TLIB_OBJS)
	$(say) AR $@
	$(Q)rm -f $@
	$(Q)ar rcs $@ $^

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(TLIB) $(AGENT_LIB) $(LIB)
	$(say) LD $@
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(LDLIBS)

test: all
	$(Q)XB_BUILD=$(abspath $(BUILD)) tests/run.sh $(if $(T),tests/$(T))

fuzz:
	$(Q)deploy/deps.sh --auto fuzz
	$(Q)$(MAKE) --no-print-directory -f tests/fuzz/fuzz.mk

bench: all
	$(Q)[ "$$(id -u)" = 0 ] || { echo "make bench needs root (network namespaces)"; exit 1; }
	$(Q)deploy/deps.sh --auto bench
	$(Q)XB_BUILD=$(abspath $(BUILD)) bench/run.sh

# The story of docs/demo: sudo make demo (CHECK=1: no pauses, assertions;
# HA=1: two gateways as one service, deploy/demo/ha.sh).
demo: deps-auto all
	$(Q)[ "$$(id -u)" = 0 ] || { echo "make demo needs root (network namespaces): sudo make demo"; exit 1; }
	$(Q)XB_BUILD=$(abspath $(BUILD)) deploy/demo/$(if $(filter 1,$(HA)),ha.sh,demo.sh) $(if $(filter 1,$(CHECK)),--check)

demo-clean:
	$(Q)deploy/demo/demo.sh --clean

clean:
	rm -rf build

# Where make install puts things. The unit, sysusers.d and tmpfiles.d go
# where Debian's systemd looks, whatever PREFIX is; the policy lives in
# /etc/xborder (xborderd's default) unless SYSCONFDIR says otherwise.
PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
SBINDIR     ?= $(PREFIX)/sbin
MANDIR      ?= $(PREFIX)/share/man
SYSCONFDIR  ?= /etc
UNITDIR     ?= /lib/systemd/system
SYSUSERSDIR ?= /usr/lib/sysusers.d
TMPFILESDIR ?= /usr/lib/tmpfiles.d
# Whichever of these the tree builds; every man page present.
SBIN_PROGS  := $(filter $(PROGS),xborderd xborder-wg xborder-posture)
BIN_PROGS   := $(filter $(PROGS),xborderctl)
MANS        := $(sort $(wildcard deploy/man/*.[1-8] man/*.[1-8]))
INSTALL_ENV  = DESTDIR='$(DESTDIR)' BUILD='$(BUILD)' PREFIX='$(PREFIX)' BINDIR='$(BINDIR)' \
	SBINDIR='$(SBINDIR)' MANDIR='$(MANDIR)' SYSCONFDIR='$(SYSCONFDIR)' UNITDIR='$(UNITDIR)' \
	SYSUSERSDIR='$(SYSUSERSDIR)' TMPFILESDIR='$(TMPFILESDIR)' SBIN_PROGS='$(SBIN_PROGS)' \
	BIN_PROGS='$(BIN_PROGS)' MANS='$(MANS)'

install: $(SBIN_PROGS:%=$(BUILD)/bin/%) $(BIN_PROGS:%=$(BUILD)/bin/%)
	$(Q)$(INSTALL_ENV) deploy/install.sh install

uninstall:
	$(Q)$(INSTALL_ENV) deploy/install.sh uninstall

-include $(ALL_OBJS:.o=.d)
