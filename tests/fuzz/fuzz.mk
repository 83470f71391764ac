# make fuzz — build every tests/fuzz/fuzz_*.c as a libFuzzer target with clang
# (ASan + UBSan), then run each for FUZZ_SECONDS (default 10; 0 = build only).
# Corpora live in build/fuzz/corpus/NAME and grow across runs; seeds in
# tests/fuzz/corpus/NAME, when there, are read too. FUZZ_TARGETS="fuzz_a
# fuzz_b" runs only those.
#
# The library is compiled once (instrumented, -fsanitize=fuzzer-no-link) into
# build/fuzz/libxborder.a; each target links what it uses from it. A target
# that drives a file's static functions #includes that .c, whose copy then
# wins over the archive's.
FUZZ_SECONDS ?= 10
FBUILD   := build/fuzz
FCC      := clang
FPKGS    := libmnl libsodium libconfig libnftables jansson sqlite3 libmicrohttpd libcrypto libcurl
FSAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined
# Warnings are errors in the harnesses (and the .c files they #include);
# the library itself is held to -Werror by the gcc build, not by clang's
# other set of warnings.
FCFLAGS  := -std=gnu11 -g -O1 -D_GNU_SOURCE -I. -MMD -MP -Wall -Wextra \
            -Wno-unused-function -Wno-bitwise-instead-of-logical $(FSAN) $(shell pkg-config --cflags $(FPKGS))
FLIBS    := $(shell pkg-config --libs $(FPKGS)) -lpthread -lm
LIBSRC   := $(filter-out %_main.c,$(wildcard common/*.c tunnel/*.c policy/*.c gateway/*.c gateway/*/*.c probe/*.c agent/*.c))
LIBOBJ   := $(LIBSRC:%.c=$(FBUILD)/obj/%.o)
FLIB     := $(FBUILD)/libxborder.a
ALLT     := $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_TARGETS ?= $(ALLT)
TARGETS  := $(FUZZ_TARGETS:%=$(FBUILD)/%)

.PHONY: fuzz-all
# Every target runs even after one fails; the failures are listed at the
# end. An input that takes over 25 s counts as a failure (a hang).
fuzz-all: $(TARGETS)
	@failed=; for t in $(TARGETS); do \
		n=$$(basename $$t); mkdir -p $(FBUILD)/corpus/$$n; \
		[ "$(FUZZ_SECONDS)" = 0 ] && continue; \
		echo "  FUZZ   $$n ($(FUZZ_SECONDS) s)"; \
		if $$t -max_total_time=$(FUZZ_SECONDS) -timeout=25 -print_final_stats=1 \
			-artifact_prefix=$(FBUILD)/$$n- $(FBUILD)/corpus/$$n \
			$$(ls -d tests/fuzz/corpus/$$n 2>/dev/null) >$(FBUILD)/$$n.log 2>&1; then \
			grep -E 'stat::number_of_executed_units' $(FBUILD)/$$n.log | sed 's/^/         /'; \
		else \
			tail -n 40 $(FBUILD)/$$n.log; failed="$$failed $$n"; \
		fi; \
	done; \
	[ -z "$$failed" ] || { echo "fuzz: failed:$$failed (inputs: $(FBUILD)/NAME-crash-*)"; exit 1; }

$(FBUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	@$(FCC) $(FCFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FLIB): $(LIBOBJ)
	@echo "  AR     $@"
	@rm -f $@
	@ar rcs $@ $^

$(FBUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(FLIB)
	@echo "  CLANG  $@"
	@$(FCC) $(FCFLAGS) -Werror -fsanitize=fuzzer -MF $@.d -o $@ $< $(FLIB) $(FLIBS)

-include $(LIBOBJ:.o=.d) $(TARGETS:=.d)
