# lwlc: the compiler (build/lwlc), its runtime (build/liblwl.a), tests, demo.
# `make` builds; `make test` installs what is missing, builds and runs every test.

CC      ?= cc
CFLAGS  ?= -O2 -g
WARN    := -Wall -Wextra -Wshadow -Wmissing-prototypes -Wstrict-prototypes -Wpointer-arith \
           -Wformat=2 -Wundef
B       ?= build
SAN     ?=
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(CFLAGS) $(WARN) $(SAN) -Icompiler -Iruntime -I$(B)/gen
VERSION := 0.1.0

FLEX    ?= flex
BISON   ?= bison

.PHONY: all deps test unit demo clean fuzz bench probe asan
all: probe $(B)/lwlc $(B)/liblwl.a

# ---- optional dependencies: one line each, the build goes on without them
probe:
	@command -v nvcc >/dev/null 2>&1 && echo "probe: nvcc    found ($$(command -v nvcc))" \
	  || echo "probe: nvcc    not found (CUDA path not built)"
	@ls /usr/local/cuda/include/cudnn.h /usr/include/cudnn.h 2>/dev/null | head -n1 | grep -q . \
	  && echo "probe: cuDNN   found" || echo "probe: cuDNN   not found"
	@ls /usr/local/cuda/include/nccl.h /usr/include/nccl.h 2>/dev/null | head -n1 | grep -q . \
	  && echo "probe: NCCL    found" || echo "probe: NCCL    not found"
	@command -v mpicc >/dev/null 2>&1 && echo "probe: MPI     found ($$(command -v mpicc))" \
	  || echo "probe: MPI     not found (multi-process CPU runs not built)"

deps:
	@tools/deps.sh

# ---- the compiler
FRONT_SRC := $(filter-out compiler/main.c,$(wildcard compiler/*.c))
FRONT_OBJ := $(patsubst compiler/%.c,$(B)/compiler/%.o,$(FRONT_SRC)) $(B)/gen/lexer.o \
             $(B)/gen/parser.o $(B)/gen/tmpl.o
TMPL      := compiler/tmpl/kernels.h compiler/tmpl/cpu_ops.h compiler/tmpl/gpu_kernels.h \
             compiler/tmpl/gpu_ops.cuh

# The emitters' templates as C strings (lwl_tmpl_kernels_h, ...).
$(B)/gen/tmpl.c: $(TMPL) Makefile
	@mkdir -p $(B)/gen
	@for f in $(TMPL); do \
	  n=$$(basename $$f | tr . _); \
	  echo "const char lwl_tmpl_$$n[] ="; \
	  sed 's/\\/\\\\/g; s/"/\\"/g; s/^/    "/; s/$$/\\n"/' $$f; \
	  echo "    ;"; \
	done > $@

$(B)/gen/parser.c $(B)/gen/parser.h: compiler/parser.y
	@mkdir -p $(B)/gen
	$(BISON) -Wall -Werror --defines=$(B)/gen/parser.h -o $(B)/gen/parser.c $<

$(B)/gen/lexer.c $(B)/gen/lexer.h: compiler/lexer.l
	@mkdir -p $(B)/gen
	$(FLEX) --header-file=$(B)/gen/lexer.h -o $(B)/gen/lexer.c $<

$(B)/gen/%.o: $(B)/gen/%.c $(B)/gen/parser.h $(B)/gen/lexer.h
	$(CC) $(ALL_CFLAGS) -Wno-unused-function -Wno-missing-prototypes -Wno-overlength-strings \
	  -c -o $@ $<

$(B)/compiler/%.o: compiler/%.c $(wildcard compiler/*.h) $(B)/gen/parser.h $(B)/gen/lexer.h
	@mkdir -p $(B)/compiler
	$(CC) $(ALL_CFLAGS) -DLWLC_VERSION='"$(VERSION)"' -DLWLC_HOME='"$(CURDIR)"' \
	  -DLWLC_RUNTIME_LIBS='"$(RUNTIME_LIBS)"' -DLWLC_NVCC='"$(NVCC)"' \
	  -DLWLC_NVCC_FLAGS='"$(NVCC_BASE) $(CUDA_INC)"' \
	  -DLWLC_NVCC_GENCODE='"$(NVCC_GENCODE)"' -DLWLC_CUDA_LIBS='"$(CUDA_LIBS)"' \
	  -c -o $@ $<

$(B)/libfront.a: $(FRONT_OBJ)
	ar rcs $@ $^

$(B)/lwlc: $(B)/compiler/main.o $(B)/libfront.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ -lm

# ---- the runtime, and its CUDA side when nvcc is there
include mk/runtime.mk
include mk/cuda.mk

# ---- tests: C units (cmocka, TAP output) and scripts, all run by prove
UNIT_SRC := $(wildcard tests/unit/*.c)
UNIT_BIN := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRC))

$(B)/tests/%: tests/unit/%.c $(B)/libfront.a $(B)/liblwl.a
	@mkdir -p $(B)/tests
	$(CC) $(ALL_CFLAGS) -Itests -Icompiler/tmpl -o $@ $^ $(RUNTIME_LIBS) -lcmocka -lm

# test_views includes the GPU views' device code (runtime/cuda/lwl_views*.h) itself.
$(B)/tests/test_views: tests/unit/test_views.c $(wildcard runtime/cuda/lwl_views*.h) \
                       $(B)/libfront.a $(B)/liblwl.a
	@mkdir -p $(B)/tests
	$(CC) $(ALL_CFLAGS) -Itests -o $@ $(filter-out %.h,$^) $(RUNTIME_LIBS) -lcmocka -lm

unit: $(UNIT_BIN)

test: deps
	@$(MAKE) --no-print-directory all unit
	@$(MAKE) --no-print-directory B=build/asan CC=gcc \
	  SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	  build/asan/lwlc build/asan/fuzz-replay
	prove -j2 tests/t/

# ---- the front end under sanitizers, and its fuzz target
$(B)/fuzz-replay: tests/fuzz/replay.c tests/fuzz/fuzz_front.c $(B)/libfront.a
	$(CC) $(ALL_CFLAGS) -o $@ tests/fuzz/replay.c tests/fuzz/fuzz_front.c $(B)/libfront.a -lm

fuzz:
	@$(MAKE) --no-print-directory B=build/fuzz CC=clang CFLAGS="-O1 -g" \
	  SAN="-fsanitize=fuzzer-no-link,address,undefined" build/fuzz/libfront.a
	clang -O1 -g -fsanitize=fuzzer,address,undefined -Icompiler -Ibuild/fuzz/gen \
	  -o build/fuzz/lwlc-fuzz tests/fuzz/fuzz_front.c build/fuzz/libfront.a -lm
	@echo "run: build/fuzz/lwlc-fuzz -dict=tests/fuzz/lwl.dict -max_total_time=600 \
	  build/fuzz/corpus tests/fuzz/corpus"

bench: all
	bench/check_time.sh

demo:
	@tools/deps.sh demo
	@$(MAKE) --no-print-directory all
	@tools/demo.sh

clean:
	rm -rf build

# ---- generated/: lwlc's output for every spec, committed so that diffs show what changes
SPECS := $(wildcard specs/*.lwl) $(wildcard examples/*.lwl)
.PHONY: generated
generated: $(B)/lwlc
	@for s in $(SPECS); do \
	  n=$$(basename $$s .lwl); \
	  $(B)/lwlc -S --emit-dir generated/$$n $$s 2>/dev/null || { echo "lwlc -S $$s failed"; exit 1; }; \
	done; echo "generated/: $(words $(SPECS)) specs"

# lwlc links programs with the runtime's libraries: rebuild it when they change
$(B)/compiler/main.o: mk/runtime.mk

# ---- the study: scaled down on the CPU, or whole on a GPU machine with ImageNet-100
.PHONY: study-mini study
study-mini:
	@tools/deps.sh demo
	@$(MAKE) --no-print-directory all
	@tools/study.sh mini

study:
	@test -n "$(DATA)" || { echo "make study DATA=/path/to/imagenet100 (an ImageFolder tree)"; \
	  exit 2; }
	@$(MAKE) --no-print-directory all
	@tools/study.sh full "$(DATA)"
