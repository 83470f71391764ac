# make fuzz — build every tests/fuzz/fuzz_*.c as a libFuzzer target with clang
# (ASan + UBSan), then run each for FUZZ_SECONDS (default 10; 0 = build only).
# Corpora live in build/fuzz/corpus/NAME and grow across runs; seeds in
# tests/fuzz/corpus/NAME, when there, are read too.
FUZZ_SECONDS ?= 10
FBUILD   := build/fuzz
FCC      := clang
FCFLAGS  := -std=gnu11 -g -O1 -D_GNU_SOURCE -I. -fsanitize=fuzzer,address,undefined \
            -fno-sanitize-recover=undefined $(shell pkg-config --cflags libsodium jansson libconfig)
FLIBS    := $(shell pkg-config --libs libsodium jansson libconfig) -lpthread -lm
LIBSRC   := $(filter-out %_main.c,$(wildcard common/*.c tunnel/*.c)) gateway/control.c \
            gateway/dns_match.c gateway/dns_list.c $(wildcard gateway/dns_wire*.c) agent/http.c \
            gateway/posture.c gateway/posture_report.c $(filter-out policy/compile.c,$(wildcard policy/*.c))
TARGETS  := $(patsubst tests/fuzz/%.c,$(FBUILD)/%,$(wildcard tests/fuzz/fuzz_*.c))

.PHONY: fuzz-all
fuzz-all: $(TARGETS)
	@set -e; for t in $(TARGETS); do \
		n=$$(basename $$t); mkdir -p $(FBUILD)/corpus/$$n; \
		if [ "$(FUZZ_SECONDS)" != 0 ]; then \
			echo "  FUZZ   $$n ($(FUZZ_SECONDS) s)"; \
			$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 -artifact_prefix=$(FBUILD)/ $(FBUILD)/corpus/$$n \
				$$(ls -d tests/fuzz/corpus/$$n 2>/dev/null) \
				>$(FBUILD)/$$n.log 2>&1 || { tail -n 40 $(FBUILD)/$$n.log; exit 1; }; \
			grep -E 'stat::number_of_executed_units' $(FBUILD)/$$n.log | sed 's/^/         /'; \
		fi; \
	done

$(FBUILD)/%: tests/fuzz/%.c $(LIBSRC)
	@mkdir -p $(@D)
	@echo "  CLANG  $@"
	@$(FCC) $(FCFLAGS) -o $@ $< $(LIBSRC) $(FLIBS)
