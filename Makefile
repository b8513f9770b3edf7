# longtail — build, run and test. `make run` and `make test` install missing Debian
# packages first (scripts/install-deps.sh), so both work on a fresh Debian 12 machine.

CC      ?= gcc
WERROR  ?= 0
OPT     ?= -O2 -march=native
WARN    := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wno-unused-parameter
ifeq ($(WERROR),1)
WARN    += -Werror
endif
CSTD    := -std=c11 -D_GNU_SOURCE
INC     := -Iinclude -Isrc
LIBS    := -ldnnl -lz -lm -lpthread

SRC     := $(sort $(wildcard src/*/*.c))
LIBSRC  := $(filter-out src/cli/%,$(SRC))
CLISRC  := $(filter src/cli/%,$(SRC))
TESTSRC := $(sort $(wildcard tests/*.c))

B       := build
BA      := build-asan
# tests/golden.sh runs a build for a fixed ISA level: with -march=native the vector width
# of `omp simd` reductions, and so the last bits of a sum, follow the CPU.
BG      := build-golden
GOLDEN_OPT := -O2 -march=x86-64-v3

LIBOBJ   := $(LIBSRC:%.c=$(B)/obj/%.o)
CLIOBJ   := $(CLISRC:%.c=$(B)/obj/%.o)
TESTOBJ  := $(TESTSRC:%.c=$(B)/obj/%.o)
ALIBOBJ  := $(LIBSRC:%.c=$(BA)/obj/%.o)
ATESTOBJ := $(TESTSRC:%.c=$(BA)/obj/%.o)

CFLAGS_R := $(CSTD) $(OPT) -g -fopenmp $(WARN) $(INC) -MMD -MP
CFLAGS_A := $(CSTD) -O1 -g -fopenmp $(WARN) $(INC) -MMD -MP \
            -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

.PHONY: all deps run test unit asan bench clean fixtures
all: $(B)/longtail $(B)/test_longtail

deps:
	@bash scripts/install-deps.sh

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_R) -c $< -o $@
$(BA)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_A) -c $< -o $@

$(B)/liblongtail.a: $(LIBOBJ)
	@mkdir -p $(B)
	rm -f $@ && ar rcs $@ $^
$(BA)/liblongtail.a: $(ALIBOBJ)
	@mkdir -p $(BA)
	rm -f $@ && ar rcs $@ $^

$(B)/longtail: $(CLIOBJ) $(B)/liblongtail.a
	$(CC) $(CFLAGS_R) $(CLIOBJ) $(B)/liblongtail.a $(LIBS) -o $@
$(B)/test_longtail: $(TESTOBJ) $(B)/liblongtail.a
	$(CC) $(CFLAGS_R) $(TESTOBJ) $(B)/liblongtail.a $(LIBS) -o $@
$(BA)/test_longtail: $(ATESTOBJ) $(BA)/liblongtail.a
	$(CC) $(CFLAGS_A) $(ATESTOBJ) $(BA)/liblongtail.a $(LIBS) -o $@
$(BA)/longtail: $(CLISRC:%.c=$(BA)/obj/%.o) $(BA)/liblongtail.a
	$(CC) $(CFLAGS_A) $(CLISRC:%.c=$(BA)/obj/%.o) $(BA)/liblongtail.a $(LIBS) -o $@

# The default training job.
run: deps
	@$(MAKE) --no-print-directory $(B)/longtail
	./$(B)/longtail train

# Unit tests, then the same tests under AddressSanitizer + UBSan; then the command's
# end-to-end tests (tests/cli.sh) on both builds; then bit-identity of every recipe's
# checkpoints against the stored digests (tests/golden.sh).
test: deps
	@$(MAKE) --no-print-directory $(B)/longtail $(B)/test_longtail $(BA)/test_longtail $(BA)/longtail
	./$(B)/test_longtail
	ASAN_OPTIONS=detect_leaks=1 LT_TEST_SANITIZER=1 ./$(BA)/test_longtail
	bash tests/cli.sh $(B)/longtail
	ASAN_OPTIONS=detect_leaks=1 bash tests/cli.sh $(BA)/longtail
	@$(MAKE) --no-print-directory B=$(BG) OPT='$(GOLDEN_OPT)' $(BG)/longtail
	bash tests/golden.sh $(BG)/longtail

unit: $(B)/test_longtail
	./$(B)/test_longtail

bench: deps $(B)/longtail
	LT_WITH_TORCH=1 bash scripts/install-deps.sh
	bash bench/compare.sh

# Regenerates the committed PyTorch fixtures (needs python3-torch).
fixtures:
	LT_WITH_TORCH=1 bash scripts/install-deps.sh
	/usr/bin/python3 tests/fixtures/make_fixtures.py

clean:
	rm -rf $(B) $(BA) $(BG)

-include $(LIBOBJ:.o=.d) $(CLIOBJ:.o=.d) $(TESTOBJ:.o=.d) $(ALIBOBJ:.o=.d) $(ATESTOBJ:.o=.d) $(CLISRC:%.c=$(BA)/obj/%.d)
