# The runtime library liblwl (data path, RNG, ops, checkpoints, evaluation), and
# lwl-imgtool, the command-line driver of the data path that the oracle tests call;
# lwl-nntool, the driver of the CPU primitives and safetensors that tests/oracle/nn_check.py calls.
RUNTIME_SRC   := $(wildcard runtime/*.c)
RUNTIME_OBJ   := $(patsubst runtime/%.c,$(B)/runtime/%.o,$(RUNTIME_SRC))
RUNTIME_LIBS  := -ljpeg -lpng -lpthread -lm
# CPU primitives (oneDNN, OpenMP-threaded; OpenBLAS) and the safetensors header (cJSON).
RUNTIME_LIBS  += -ldnnl -lopenblas -lgomp -lcjson
# Student-t quantiles (GSL); its cblas calls resolve to OpenBLAS's, so no -lgslcblas.
RUNTIME_LIBS  += -lgsl
# CPU ranks (mpirun -np N) through Open MPI, when its compiler wrapper is there.
MPICC         ?= mpicc
MPI_CFLAGS    := $(shell $(MPICC) --showme:compile 2>/dev/null)
MPI_LIBS      := $(shell $(MPICC) --showme:link 2>/dev/null)
ifneq ($(MPI_LIBS),)
RUNTIME_LIBS  += $(MPI_LIBS)
$(B)/runtime/lwl_comm.o: RUNTIME_CFLAGS += -DLWL_HAVE_MPI $(MPI_CFLAGS)
endif
# What was found, kept in $(B)/found.txt: what links against it is rebuilt when it changes.
FOUND := $(shell mkdir -p $(B) && echo '$(MPI_LIBS)' > $(B)/found.new && \
           (cmp -s $(B)/found.new $(B)/found.txt || mv $(B)/found.new $(B)/found.txt); \
           rm -f $(B)/found.new)
$(B)/runtime/lwl_comm.o $(B)/compiler/main.o: $(B)/found.txt
RUNTIME_TOOLS := $(B)/lwl-imgtool $(B)/lwl-lewelb
# The pixel loops need gcc's full vectoriser cost model (-O2's "very cheap" one skips
# loops that need a run-time trip-count or alias check).
RUNTIME_CFLAGS := $(shell $(CC) -fvect-cost-model=dynamic -E -x c /dev/null >/dev/null 2>&1 \
                    && echo -fvect-cost-model=dynamic)
RUNTIME_TOOLS += $(B)/lwl-nntool

$(B)/runtime/%.o: runtime/%.c $(wildcard runtime/*.h)
	@mkdir -p $(B)/runtime
	$(CC) $(ALL_CFLAGS) $(RUNTIME_CFLAGS) -c -o $@ $<

$(B)/liblwl.a: $(RUNTIME_OBJ)
	@mkdir -p $(B)
	rm -f $@
	ar rcs $@ $^

$(B)/lwl-imgtool: tools/lwl-imgtool.c $(B)/liblwl.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(RUNTIME_LIBS)

$(B)/lwl-nntool: tools/lwl-nntool.c $(B)/liblwl.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(RUNTIME_LIBS)

all: $(RUNTIME_TOOLS)

# The hand-written LEWEL_B pipeline the data tests and bench/data.sh drive.
$(B)/lwl-lewelb: tools/lwl-lewelb.c $(B)/liblwl.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(RUNTIME_LIBS)

# lwl_parallel_for's loop runs on OpenMP, the pool oneDNN already uses.
$(B)/runtime/lwl_nn.o: RUNTIME_CFLAGS += -fopenmp
