# The runtime library liblwl (data path, RNG, ops, checkpoints, evaluation).
RUNTIME_SRC  := $(wildcard runtime/*.c)
RUNTIME_OBJ  := $(patsubst runtime/%.c,$(B)/runtime/%.o,$(RUNTIME_SRC))
RUNTIME_LIBS := -lpthread -lm

$(B)/runtime/%.o: runtime/%.c $(wildcard runtime/*.h)
	@mkdir -p $(B)/runtime
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(B)/liblwl.a: $(RUNTIME_OBJ)
	@mkdir -p $(B)
	rm -f $@
	ar rcs $@ $^
