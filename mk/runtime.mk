# The runtime library liblwl (data path, RNG, ops, checkpoints, evaluation), and
# lwl-imgtool, the command-line driver of the data path that the oracle tests call.
RUNTIME_SRC   := $(wildcard runtime/*.c)
RUNTIME_OBJ   := $(patsubst runtime/%.c,$(B)/runtime/%.o,$(RUNTIME_SRC))
RUNTIME_LIBS  := -ljpeg -lpng -lpthread -lm
RUNTIME_TOOLS := $(B)/lwl-imgtool

$(B)/runtime/%.o: runtime/%.c $(wildcard runtime/*.h)
	@mkdir -p $(B)/runtime
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(B)/liblwl.a: $(RUNTIME_OBJ)
	@mkdir -p $(B)
	rm -f $@
	ar rcs $@ $^

$(B)/lwl-imgtool: tools/lwl-imgtool.c $(B)/liblwl.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(RUNTIME_LIBS)

all: $(RUNTIME_TOOLS)
