/* libFuzzer target for lwlc's front end: any bytes as a spec go through the
 * lexer, parser, `use` resolution, schema split, conversion and --print. It
 * must never crash, hang, leak or read out of bounds. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *sink;
    if (!sink)
        sink = fopen("/dev/null", "w");
    lwl_diag d;
    diag_init(&d, sink);
    lwl_spec spec;
    const char *defs[] = { "train.epochs=3", "augment.view2.solarize=p 0.5" };
    lwl_defines def = { defs, size % 3 == 0 ? 2 : 0 };
    int errors = spec_load_text("fuzz.lwl", (const char *)data, size, &def, &d, &spec);
    if (errors == 0)
        spec_print(&spec, ".", sink);
    spec_free(&spec);
    source_free_all();
    return 0;
}
