/* lwlc's command line: check, print or build a .lwl experiment spec.
 * Exit codes: 0 ok, 1 spec errors, 2 usage, 3 build failure. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emit.h"
#include "path.h"
#include "plan.h"
#include "spec.h"

#ifndef LWLC_VERSION
#define LWLC_VERSION "dev"
#endif
#ifndef LWLC_RUNTIME_LIBS
#define LWLC_RUNTIME_LIBS "-ljpeg -lpng -ldnnl -lopenblas -lgomp -lcjson -lpthread -lm"
#endif
/* The CUDA toolchain make found (mk/cuda.mk): nvcc, its flags and the libraries; empty
 * when lwlc was built without it. */
#ifndef LWLC_NVCC
#define LWLC_NVCC ""
#endif
#ifndef LWLC_NVCC_FLAGS
#define LWLC_NVCC_FLAGS ""
#endif
#ifndef LWLC_NVCC_GENCODE
#define LWLC_NVCC_GENCODE ""
#endif
#ifndef LWLC_CUDA_LIBS
#define LWLC_CUDA_LIBS ""
#endif

static const char usage[] =
    "usage: lwlc SPEC.lwl [-o OUT] [-S] [--emit-dir DIR] [--target cpu|cuda|all]\n"
    "            [--check] [--print] [--report] [-D section.key=value] [-Werror] [-v]\n"
    "            [--help] [--version]\n";

static const char help[] =
    "Compiles a .lwl self-supervised experiment spec into a training program.\n"
    "\n"
    "  --check              read and check the spec(s), report every error; build nothing\n"
    "  --print              write the resolved spec with every default, as .lwl\n"
    "  --report             the GPU step's launches and bytes per step, and each kernel's\n"
    "                       registers and shared memory (ptxas); writes the sources\n"
    "  -D section.key=value override a setting, e.g. -D train.epochs=1,\n"
    "                       -D eval.knn.k=200, -D augment.view2.solarize='p 0.5'\n"
    "  -o OUT               the program to build (default ./NAME)\n"
    "  -S                   write the generated sources only (to --emit-dir)\n"
    "  --emit-dir DIR       where generated sources go (default generated/NAME)\n"
    "  --target T           cpu, cuda or all (default: all where nvcc exists)\n"
    "  -Werror              treat warnings as errors\n"
    "  -v                   say what is done\n"
    "  --help, --version    this text; the version\n"
    "\n"
    "Exit status: 0 ok, 1 errors in the spec, 2 bad command line, 3 build failure.\n"
    "The language: docs/language.md.\n";

typedef struct opts {
    const char **specs;
    int nspecs;
    lwl_defines defs;
    int check, print, report, sources_only, verbose, werror;
    const char *out, *emit_dir, *target;
} opts;

__attribute__((format(printf, 1, 2)))
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("lwlc: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fputs(usage, stderr);
    return 2;
}

/* Fills o from argv; returns -1 to go on, or an exit code. */
static int parse_args(int argc, char **argv, opts *o)
{
    o->specs = xcalloc((size_t)argc, sizeof *o->specs);
    o->defs.defs = xcalloc((size_t)argc, sizeof *o->defs.defs);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            fputs(help, stdout);
            return 0;
        } else if (strcmp(a, "--version") == 0) {
            printf("lwlc %s\n", LWLC_VERSION);
            return 0;
        } else if (strcmp(a, "--check") == 0) {
            o->check = 1;
        } else if (strcmp(a, "--print") == 0) {
            o->print = 1;
        } else if (strcmp(a, "--report") == 0) {
            o->report = 1;
        } else if (strcmp(a, "-S") == 0) {
            o->sources_only = 1;
        } else if (strcmp(a, "-v") == 0) {
            o->verbose = 1;
        } else if (strcmp(a, "-Werror") == 0) {
            o->werror = 1;
        } else if (strncmp(a, "-D", 2) == 0) {
            const char *d = a[2] ? a + 2 : val;
            if (!d)
                return usage_error("%s needs section.key=value", a);
            if (!a[2])
                i++;
            o->defs.defs[o->defs.ndefs++] = d;
        } else if (strcmp(a, "-o") == 0 || strcmp(a, "--emit-dir") == 0 ||
                   strcmp(a, "--target") == 0) {
            if (!val)
                return usage_error("%s needs a value", a);
            i++;
            if (a[1] == 'o')
                o->out = val;
            else if (a[2] == 'e')
                o->emit_dir = val;
            else if (strcmp(val, "cpu") && strcmp(val, "cuda") && strcmp(val, "all"))
                return usage_error("--target must be cpu, cuda or all, got '%s'", val);
            else
                o->target = val;
        } else if (a[0] == '-' && a[1]) {
            return usage_error("unknown option '%s'", a);
        } else {
            o->specs[o->nspecs++] = a;
        }
    }
    if (o->nspecs == 0)
        return usage_error("%s", "no spec file given");
    if (o->nspecs > 1 && !o->check)
        return usage_error("%s", "several spec files are accepted only with --check");
    if (o->check && o->print)
        return usage_error("%s", "--check and --print do not go together");
    return -1;
}

/* The directory lwlc's runtime headers and library are found in. */
static const char *home(void)
{
    const char *h = getenv("LWL_HOME");
#ifdef LWLC_HOME
    return h && *h ? h : LWLC_HOME;
#else
    return h && *h ? h : ".";
#endif
}

/* Runs a build command (shown with -v); 0, or 3 with a message naming `what`. */
static int run_cmd(const opts *o, char *cmd, const char *what, const char *out)
{
    if (o->verbose)
        fprintf(stderr, "lwlc: %s\n", cmd);
    int rc = system(cmd);
    free(cmd);
    if (rc != 0) {
        fprintf(stderr, "lwlc: building %s failed (%s's messages are above)\n", out, what);
        return 3;
    }
    return 0;
}

/* What lwlc builds with, from make unless the environment says otherwise (a machine where
 * lwlc and its runtime were carried, tests/gpu/): LWL_BUILD, the folder of liblwl.a
 * (default HOME/build); LWL_RUNTIME_LIBS, LWL_NVCC, LWL_NVCC_FLAGS, LWL_CUDA_LIBS. */
static const char *setting(const char *env, const char *built)
{
    const char *v = getenv(env);
    return v && *v ? v : built;
}

static const char *libdir(void)
{
    static char *dir;
    if (!dir)
        dir = getenv("LWL_BUILD") && *getenv("LWL_BUILD") ? xstrdup(getenv("LWL_BUILD"))
                                                         : xasprintf("%s/build", home());
    return dir;
}

/* The tests' emulated GPU (tests/emu/): LWLC_GPU_EMULATE=1 builds net.cu with the host
 * C++ compiler against build/emu/lwl_gpu_emu.o instead of nvcc and the CUDA libraries. */
static int emulated(void)
{
    const char *v = getenv("LWLC_GPU_EMULATE");
    return v && *v && strcmp(v, "0") != 0;
}

/* The CUDA path is built: --target cuda or all, or by default where nvcc was found. */
static int with_cuda(const opts *o)
{
    if (o->target)
        return strcmp(o->target, "cpu") != 0;
    return *setting("LWL_NVCC", LWLC_NVCC) != 0 || emulated();
}

/* Compiles the generated sources in dir into the program `out`: the C of net.c, views.c
 * and main.c, and with CUDA net.cu by nvcc for CUDA_ARCH (default: the architectures
 * lwlc was built for), linked with liblwl (and liblwl_cuda). */
static int build(const opts *o, const lwl_spec *spec, const char *dir, const char *out)
{
    char *specdir = realpath(spec->src->dir, NULL);
    const char *cc = getenv("CC") && *getenv("CC") ? getenv("CC") : "cc";
    int cuda = with_cuda(o), rc = 0;
    char *cuobj = xasprintf("%s.net_cu.o", out), *cuviews = xasprintf("%s.views_cu.o", out);
    char *extra = xstrdup("");
    if (cuda && emulated()) {
        const char *cxx = getenv("CXX") && *getenv("CXX") ? getenv("CXX") : "c++";
        rc = run_cmd(o, xasprintf("%s -std=c++17 -O2 -x c++ -I'%s' -I'%s/runtime' "
                                  "-I'%s/runtime/cuda' -c '%s/net.cu' -o '%s'", cxx, dir, home(),
                                  home(), dir, cuobj), "the C++ compiler", out);
        free(extra);
        extra = xasprintf("-DLWL_WITH_CUDA '%s' '%s/emu/lwl_gpu_emu.o' -lstdc++", cuobj,
                          libdir());
    } else if (cuda) {
        const char *arch = getenv("CUDA_ARCH");
        char *gencode = xstrdup(arch && *arch ? "" : LWLC_NVCC_GENCODE);
        if (arch && *arch) {
            char *list = xstrdup(arch), *save = NULL;
            for (char *a = strtok_r(list, " ,", &save); a; a = strtok_r(NULL, " ,", &save)) {
                char *g = xasprintf("%s -gencode arch=compute_%s,code=sm_%s", gencode, a, a);
                free(gencode);
                gencode = g;
            }
            free(list);
        }
        for (int k = 0; rc == 0 && k < 2; k++)
            rc = run_cmd(o, xasprintf("%s %s %s -Xcompiler -Wno-unused-function -I'%s' "
                                      "-I'%s/runtime' -I'%s/runtime/cuda' -c '%s/%s.cu' "
                                      "-o '%s'", setting("LWL_NVCC", LWLC_NVCC),
                                      setting("LWL_NVCC_FLAGS", LWLC_NVCC_FLAGS), gencode, dir,
                                      home(), home(), dir, k ? "views" : "net",
                                      k ? cuviews : cuobj), "nvcc", out);
        free(gencode);
        free(extra);
        extra = xasprintf("-DLWL_WITH_CUDA '%s' '%s' '%s/liblwl_cuda.a' %s -lstdc++",
                          cuobj, cuviews, libdir(), setting("LWL_CUDA_LIBS", LWLC_CUDA_LIBS));
    }
    if (rc == 0)
        rc = run_cmd(o, xasprintf("%s -std=c11 -D_GNU_SOURCE -O2 -march=native "
                                  "-DLWL_SPEC_DIR='\"%s\"' -I'%s' -I'%s/runtime' '%s/net.c' "
                                  "'%s/views.c' '%s/main.c' %s '%s/liblwl.a' %s -o '%s'",
                                  cc, specdir ? specdir : ".", dir, home(), dir, dir, dir, extra,
                                  libdir(), setting("LWL_RUNTIME_LIBS", LWLC_RUNTIME_LIBS), out),
                    "the C compiler", out);
    if (cuda) {
        remove(cuobj);
        remove(cuviews);
    }
    free(specdir);
    free(cuobj);
    free(cuviews);
    free(extra);
    if (rc == 0 && o->verbose)
        fprintf(stderr, "lwlc: built %s%s\n", out, cuda ? " (CPU and CUDA)" : "");
    return rc;
}

/* Lowers, emits generated/<name>/ (or --emit-dir) and builds unless -S. */
static int generate(const opts *o, const lwl_spec *spec, lwl_diag *d)
{
    if (with_cuda(o) && !o->sources_only && !*setting("LWL_NVCC", LWLC_NVCC) && !emulated()) {
        fprintf(stderr, "lwlc: --target %s: this lwlc was built without nvcc (CUDA not found); "
                "use --target cpu\n", o->target);
        return 3;
    }
    lwl_plan plan;
    if (plan_build(spec, &plan, d)) {
        fprintf(stderr, "%s: %d error%s\n", spec->src->path, d->errors, d->errors == 1 ? "" : "s");
        return 1;
    }
    char *dir = o->emit_dir ? xstrdup(o->emit_dir) : xasprintf("generated/%s", spec->name);
    char *out = o->out ? xstrdup(o->out) : xasprintf("./%s", spec->name);
    int rc = emit_c(&plan, dir, d) ? 3 : 0;
    diag_flush(d);
    if (rc == 0 && o->verbose)
        fprintf(stderr, "lwlc: wrote %s/\n", dir);
    if (rc == 0 && o->report) {
        /* ptxas reports for one architecture: the first of CUDA_ARCH, else sm_90 */
        const char *env = getenv("CUDA_ARCH");
        int arch = env ? atoi(env) : 0;
        arch = arch >= 50 && arch < 1000 ? arch : 90;
        char *gencode = xasprintf("-gencode arch=compute_%d,code=sm_%d", arch, arch);
        char *inc = xasprintf("-I'%s' -I'%s/runtime' -I'%s/runtime/cuda'", dir, home(), home());
        rc = emit_report(&plan, dir, setting("LWL_NVCC", LWLC_NVCC),
                         setting("LWL_NVCC_FLAGS", LWLC_NVCC_FLAGS), gencode, inc, stdout) ? 3 : 0;
        free(gencode);
        free(inc);
    } else if (rc == 0 && !o->sources_only) {
        rc = build(o, spec, dir, out);
    }
    plan_free(&plan);
    free(dir);
    free(out);
    return rc;
}

static int run(const opts *o)
{
    int status = 0;
    for (int i = 0; i < o->nspecs; i++) {
        lwl_diag d;
        diag_init(&d, stderr);
        d.werror = o->werror;
        lwl_spec spec;
        int errors = spec_load(o->specs[i], &o->defs, &d, &spec);
        if (errors) {
            fprintf(stderr, "%s: %d error%s, %d warning%s\n", o->specs[i], errors,
                    errors == 1 ? "" : "s", d.warnings, d.warnings == 1 ? "" : "s");
            status = 1;
        } else if (o->print) {
            char *dir = xstrdup(o->specs[i]);
            char *slash = strrchr(dir, '/');
            if (slash)
                slash[slash == dir] = 0;
            else
                strcpy(dir, ".");
            spec_print(&spec, dir, stdout);
            free(dir);
        } else if (o->check) {
            if (o->verbose)
                fprintf(stderr, "%s: ok, experiment '%s'\n", o->specs[i], spec.name);
        } else {
            status = generate(o, &spec, &d);
        }
        spec_free(&spec);
    }
    return status;
}

int main(int argc, char **argv)
{
    static char errbuf[1 << 16];
    setvbuf(stderr, errbuf, _IOFBF, sizeof errbuf);
    opts o;
    memset(&o, 0, sizeof o);
    int rc = parse_args(argc, argv, &o);
    if (rc < 0)
        rc = run(&o);
    free(o.specs);
    free((void *)o.defs.defs);
    source_free_all();
    return rc;
}
