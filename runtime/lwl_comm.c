/* Ranks and collectives (see lwl_comm.h). With LWL_HAVE_MPI the collectives
 * are MPI's, reduced on rank 0 and broadcast so that every rank holds the same
 * bits; a rank that waits sleeps between polls instead of spinning, so that a
 * rank doing rank-0-only work (evaluation, checkpoints) keeps its core. */
#include "lwl_comm.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef LWL_HAVE_MPI
#include <mpi.h>
#endif

static lwl_ranks ranks = { 0, 1, 0, 1, "none" };
static int mpi_on;

/* The integer value of environment variable `name`, or -1 when unset or not a number. */
static int env_int(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return -1;
    char *end;
    long n = strtol(v, &end, 10);
    return *end || n < 0 || n > 1 << 20 ? -1 : (int)n;
}

lwl_ranks lwl_ranks_from_env(void)
{
    static const struct {
        const char *launcher, *rank, *world, *local_rank, *local_world;
    } kinds[] = {
        { "mpirun", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
          "OMPI_COMM_WORLD_LOCAL_SIZE" },
        { "pmi", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS" },
        { "slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_NTASKS_PER_NODE" },
        { "torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE" },
        { "lwl", "LWL_RANK", "LWL_WORLD", "LWL_RANK", "LWL_WORLD" },
    };
    lwl_ranks r = { 0, 1, 0, 1, "none" };
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        int rank = env_int(kinds[k].rank), world = env_int(kinds[k].world);
        if (rank < 0 || world < 1 || rank >= world)
            continue;
        int lr = env_int(kinds[k].local_rank), lw = env_int(kinds[k].local_world);
        r.rank = rank;
        r.world = world;
        r.local_rank = lr >= 0 ? lr : rank;
        r.local_world = lw >= 1 ? lw : world;
        r.launcher = kinds[k].launcher;
        break;
    }
    return r;
}

static char *msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *msg(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

int lwl_comm_mpi(void)
{
    return mpi_on;
}

int lwl_comm_has_mpi(void)
{
#ifdef LWL_HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

int lwl_comm_init(int *argc, char ***argv, char **err)
{
    lwl_ranks env = lwl_ranks_from_env();
    *err = NULL;
    ranks = env;
    if (env.world == 1)
        return 0;
    if (!strcmp(env.launcher, "lwl"))
        return 0;     /* GPU ranks the program started itself: they meet through NCCL */
    if (!strcmp(env.launcher, "torchrun")) {
        *err = msg("started as rank %d of %d by torchrun (RANK, WORLD_SIZE): CPU ranks join "
                   "through MPI; start them with mpirun -np %d or srun", env.rank, env.world,
                   env.world);
        return -1;
    }
#ifdef LWL_HAVE_MPI
    int provided, size, rank;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        *err = msg("MPI_Init failed (rank %d of %d, launcher %s)", env.rank, env.world,
                   env.launcher);
        return -1;
    }
    mpi_on = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (size != env.world || rank != env.rank) {
        *err = msg("MPI sees rank %d of %d, the launcher's variables say %d of %d", rank, size,
                   env.rank, env.world);
        return -1;
    }
    return 0;
#else
    (void)argc;
    (void)argv;
    *err = msg("started as rank %d of %d (%s) but this program was built without MPI "
               "(install libopenmpi-dev, then rebuild liblwl and the program)", env.rank,
               env.world, env.launcher);
    return -1;
#endif
}

const lwl_ranks *lwl_comm_ranks(void)
{
    return &ranks;
}

int lwl_comm_rank(void)
{
    return ranks.rank;
}

int lwl_comm_world(void)
{
    return ranks.world;
}

#ifdef LWL_HAVE_MPI
/* Waits for request q, sleeping 200 us between polls. */
static int wait_sleeping(MPI_Request *q)
{
    struct timespec nap = { 0, 200000 };
    int done = 0;
    while (!done) {
        if (MPI_Test(q, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS)
            return -1;
        if (!done)
            nanosleep(&nap, NULL);
    }
    return 0;
}

/* MPI messages count in int, and the sum needs a buffer: arrays go in pieces. */
#define PIECE ((size_t)1 << 20)

/* v += t over k elements of type t (MPI_FLOAT or MPI_DOUBLE). */
static void add_piece(void *v, const void *t, int k, MPI_Datatype type)
{
    if (type == MPI_FLOAT) {
        float *a = v;
        const float *b = t;
        for (int i = 0; i < k; i++)
            a[i] += b[i];
    } else {
        double *a = v;
        const double *b = t;
        for (int i = 0; i < k; i++)
            a[i] += b[i];
    }
}

/* The sum over ranks in rank order, ((v0 + v1) + v2) + ..., on rank 0 (the order one
 * process adds its chunks in), then rank 0's result to every rank. */
static int reduce_bcast(void *v, size_t n, MPI_Datatype type, size_t size)
{
    static void *tmp;
    if (!tmp && ranks.rank == 0 && !(tmp = malloc(PIECE * sizeof(double)))) {
        fprintf(stderr, "rank 0: out of memory for the sum over ranks\n");
        return -1;
    }
    for (size_t at = 0; at < n; at += PIECE) {
        int k = (int)(n - at < PIECE ? n - at : PIECE), bad = 0;
        char *p = (char *)v + at * size;
        MPI_Request q;
        if (ranks.rank == 0) {
            for (int src = 1; src < ranks.world && !bad; src++) {
                bad = MPI_Irecv(tmp, k, type, src, 7, MPI_COMM_WORLD, &q) != MPI_SUCCESS ||
                      wait_sleeping(&q);
                if (!bad)
                    add_piece(p, tmp, k, type);
            }
        } else {
            bad = MPI_Isend(p, k, type, 0, 7, MPI_COMM_WORLD, &q) != MPI_SUCCESS ||
                  wait_sleeping(&q);
        }
        if (bad || MPI_Ibcast(p, k, type, 0, MPI_COMM_WORLD, &q) != MPI_SUCCESS ||
            wait_sleeping(&q)) {
            fprintf(stderr, "rank %d: the sum over ranks failed\n", ranks.rank);
            return -1;
        }
    }
    return 0;
}

static int bcast(void *v, size_t n, MPI_Datatype t, size_t size)
{
    for (size_t at = 0; at < n; at += PIECE) {
        int k = (int)(n - at < PIECE ? n - at : PIECE);
        MPI_Request q;
        if (MPI_Ibcast((char *)v + at * size, k, t, 0, MPI_COMM_WORLD, &q) != MPI_SUCCESS ||
            wait_sleeping(&q)) {
            fprintf(stderr, "rank %d: MPI broadcast failed\n", ranks.rank);
            return -1;
        }
    }
    return 0;
}
#endif

int lwl_comm_sum_d(double *v, size_t n)
{
#ifdef LWL_HAVE_MPI
    if (mpi_on)
        return reduce_bcast(v, n, MPI_DOUBLE, sizeof *v);
#endif
    (void)v;
    (void)n;
    return 0;
}

int lwl_comm_sum_f(float *v, size_t n)
{
#ifdef LWL_HAVE_MPI
    if (mpi_on)
        return reduce_bcast(v, n, MPI_FLOAT, sizeof *v);
#endif
    (void)v;
    (void)n;
    return 0;
}

int lwl_comm_mean_f(float *v, size_t n)
{
    if (ranks.world == 1)
        return 0;
    if (lwl_comm_sum_f(v, n))
        return -1;
    float inv = 1.0f / (float)ranks.world;
    for (size_t i = 0; i < n; i++)
        v[i] *= inv;
    return 0;
}

int lwl_comm_bcast_f(float *v, size_t n)
{
#ifdef LWL_HAVE_MPI
    if (mpi_on)
        return bcast(v, n, MPI_FLOAT, sizeof *v);
#endif
    (void)v;
    (void)n;
    return 0;
}

int lwl_comm_bcast_bytes(void *v, size_t n)
{
#ifdef LWL_HAVE_MPI
    if (mpi_on)
        return bcast(v, n, MPI_BYTE, 1);
#endif
    (void)v;
    (void)n;
    return 0;
}

int lwl_comm_max_i(int *v)
{
#ifdef LWL_HAVE_MPI
    if (mpi_on) {
        MPI_Request q;
        if (MPI_Iallreduce(MPI_IN_PLACE, v, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD, &q) !=
                MPI_SUCCESS || wait_sleeping(&q)) {
            fprintf(stderr, "rank %d: MPI all-reduce failed\n", ranks.rank);
            return -1;
        }
    }
#endif
    (void)v;
    return 0;
}

int lwl_comm_barrier(void)
{
#ifdef LWL_HAVE_MPI
    if (mpi_on) {
        MPI_Request q;
        if (MPI_Ibarrier(MPI_COMM_WORLD, &q) != MPI_SUCCESS || wait_sleeping(&q)) {
            fprintf(stderr, "rank %d: MPI barrier failed\n", ranks.rank);
            return -1;
        }
    }
#endif
    return 0;
}

void lwl_comm_abort(int code)
{
#ifdef LWL_HAVE_MPI
    if (mpi_on) {
        fprintf(stderr, "rank %d of %d failed (see above): stopping every rank\n", ranks.rank,
                ranks.world);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, code);
    }
#endif
    (void)code;
}

void lwl_comm_finalize(void)
{
#ifdef LWL_HAVE_MPI
    if (mpi_on)
        MPI_Finalize();
    mpi_on = 0;
#endif
}
