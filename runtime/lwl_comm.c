/* Ranks and collectives (see lwl_comm.h). With LWL_HAVE_MPI the collectives
 * are MPI's, reduced on rank 0 and broadcast so that every rank holds the same
 * bits; a rank that waits sleeps between polls instead of spinning, so that a
 * rank doing rank-0-only work (evaluation, checkpoints) keeps its core. Ranks
 * without MPI (torchrun's GPU ranks) share NCCL's id over TCP. */
#include "lwl_comm.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifdef LWL_HAVE_MPI
#include <mpi.h>
#endif

static lwl_ranks ranks = { 0, 1, 0, 1, "none" };
static int mpi_on;
#ifdef LWL_HAVE_MPI
static MPI_Comm grad_comm = MPI_COMM_NULL;   /* the gradient buckets' own */
#endif

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

/* The tasks on node `node` of a SLURM task list: "4", "2(x3)", "2(x3),1" (2 tasks on each
 * of nodes 0-2, 1 on node 3); -1 when malformed or too short. */
static int slurm_tasks_on(const char *list, int node)
{
    const char *s = list;
    while (s && *s) {
        char *end;
        long n = strtol(s, &end, 10), times = 1;
        if (end == s || n < 1 || n > 1 << 20)
            return -1;
        s = end;
        if (*s == '(') {
            if (s[1] != 'x')
                return -1;
            times = strtol(s + 2, &end, 10);
            if (end == s + 2 || times < 1 || times > 1 << 20 || *end != ')')
                return -1;
            s = end + 1;
        }
        if (*s && *s != ',')
            return -1;
        if (node < times)
            return (int)n;
        node -= (int)times;
        s += *s == ',';
    }
    return -1;
}

/* SLURM's tasks on this node (see lwl_ranks_from_env), or -1. */
static int slurm_local_world(void)
{
    const char *list = getenv("SLURM_NTASKS_PER_NODE");
    if (!list || !*list)
        list = getenv("SLURM_TASKS_PER_NODE");
    int node = env_int("SLURM_NODEID");
    return slurm_tasks_on(list, node < 0 ? 0 : node);
}

lwl_ranks lwl_ranks_from_env(void)
{
    static const struct {
        const char *launcher, *rank, *world, *local_rank, *local_world;
    } kinds[] = {
        { "lwl", "LWL_RANK", "LWL_WORLD", "LWL_RANK", "LWL_WORLD" },
        { "torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE" },
        { "mpirun", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
          "OMPI_COMM_WORLD_LOCAL_SIZE" },
        { "pmi", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS" },
        { "slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", NULL },
    };
    lwl_ranks r = { 0, 1, 0, 1, "none" };
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        int rank = env_int(kinds[k].rank), world = env_int(kinds[k].world);
        if (rank < 0 || world < 1 || rank >= world)
            continue;
        int lr = env_int(kinds[k].local_rank);
        int lw = kinds[k].local_world ? env_int(kinds[k].local_world) : slurm_local_world();
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
    /* GPU ranks the program started itself, and torchrun's, meet through NCCL (the driver
     * refuses them on the CPU) */
    if (!strcmp(env.launcher, "lwl") || !strcmp(env.launcher, "torchrun"))
        return 0;
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
    if (MPI_Comm_dup(MPI_COMM_WORLD, &grad_comm) != MPI_SUCCESS) {
        *err = msg("MPI_Comm_dup failed (rank %d of %d)", rank, size);
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

/* ---- the gradients' sums in buckets (lwl_comm_sum_start): each a small state machine,
 * moved on by MPI_Test whenever a bucket starts and while the step waits for them. On its
 * own communicator, tagged by the bucket's number in the step. */

enum { SUM_RECV, SUM_SEND, SUM_BACK, SUM_DONE };

typedef struct sum_op {
    float *v;
    int n, stage;
    int from;               /* rank 0: the rank whose bucket it receives now */
    float *tmp;             /* rank 0: that bucket (kept from step to step) */
    size_t cap;
    MPI_Request *q;         /* rank 0: one per rank sending back; the others: q[0] */
} sum_op;

static sum_op *ops;
static int nops, capops;

static int sum_fail(const sum_op *o, int rc, const char *what)
{
    char text[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    if (rc != MPI_SUCCESS)
        MPI_Error_string(rc, text, &len);
    fprintf(stderr, "rank %d: the gradients' sum over the ranks failed (bucket %d, %s)%s%s\n",
            ranks.rank, (int)(o - ops), what, len ? ": " : "", text);
    return -1;
}

/* Posts what bucket o waits for next: rank 0 a receive from o->from or, after the last,
 * the sends back; the others the receive of the sum once their send is done. */
static int sum_post(sum_op *o)
{
    int tag = (int)(o - ops), rc;
    if (ranks.rank != 0) {
        rc = MPI_Irecv(o->v, o->n, MPI_FLOAT, 0, tag, grad_comm, &o->q[0]);
        o->stage = SUM_BACK;
        return rc == MPI_SUCCESS ? 0 : sum_fail(o, rc, "receiving the sum");
    }
    if (o->from < ranks.world) {
        rc = MPI_Irecv(o->tmp, o->n, MPI_FLOAT, o->from, tag, grad_comm, &o->q[0]);
        return rc == MPI_SUCCESS ? 0 : sum_fail(o, rc, "receiving a rank's bucket");
    }
    for (int k = 1; k < ranks.world; k++)
        if ((rc = MPI_Isend(o->v, o->n, MPI_FLOAT, k, tag, grad_comm, &o->q[k - 1])) !=
            MPI_SUCCESS)
            return sum_fail(o, rc, "sending the sum back");
    o->stage = SUM_SEND;
    return 0;
}

/* Moves bucket o on as far as it goes without waiting. */
static int sum_poll(sum_op *o)
{
    for (;;) {
        int done = 0, rc;
        if (o->stage == SUM_DONE)
            return 0;
        if (ranks.rank == 0 && o->stage == SUM_SEND)
            rc = MPI_Testall(ranks.world - 1, o->q, &done, MPI_STATUSES_IGNORE);
        else
            rc = MPI_Test(&o->q[0], &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS)
            return sum_fail(o, rc, "waiting");
        if (!done)
            return 0;
        if (o->stage == SUM_SEND && ranks.rank != 0) {
            if (sum_post(o))
                return -1;
        } else if (o->stage == SUM_RECV) {
            add_piece(o->v, o->tmp, o->n, MPI_FLOAT);
            o->from++;
            if (sum_post(o))
                return -1;
        } else {
            o->stage = SUM_DONE;
        }
    }
}

static int sum_poll_all(void)
{
    for (int i = 0; i < nops; i++)
        if (sum_poll(&ops[i]))
            return -1;
    return 0;
}

/* Bucket nops: its buffers, then its first message. */
static int sum_begin(float *v, size_t n)
{
    if (nops == capops) {
        int cap = capops ? 2 * capops : 16;
        sum_op *g = cap <= 32768 ? realloc(ops, cap * sizeof *g) : NULL;  /* tags < 32768 */
        if (!g) {
            fprintf(stderr, "rank %d: no room for gradient bucket %d\n", ranks.rank, nops);
            return -1;
        }
        memset(g + capops, 0, (cap - capops) * sizeof *g);
        ops = g;
        capops = cap;
    }
    sum_op *o = &ops[nops++];
    o->v = v;
    o->n = (int)n;
    o->from = 1;
    if (!o->q && !(o->q = malloc(ranks.world * sizeof *o->q)))
        return sum_fail(o, MPI_SUCCESS, "out of memory");
    if (ranks.rank != 0) {
        o->stage = SUM_SEND;
        int rc = MPI_Isend(v, o->n, MPI_FLOAT, 0, (int)(o - ops), grad_comm, &o->q[0]);
        return rc == MPI_SUCCESS ? 0 : sum_fail(o, rc, "sending the bucket");
    }
    if (o->cap < n) {
        free(o->tmp);
        o->cap = 0;
        if (!(o->tmp = malloc(n * sizeof *o->tmp)))
            return sum_fail(o, MPI_SUCCESS, "out of memory");
        o->cap = n;
    }
    o->stage = SUM_RECV;
    return sum_post(o);
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

int lwl_comm_sum_start(float *v, size_t n)
{
#ifdef LWL_HAVE_MPI
    if (mpi_on) {
        if (n > (size_t)INT_MAX) {
            fprintf(stderr, "rank %d: a gradient bucket of %zu floats is too large\n",
                    ranks.rank, n);
            return -1;
        }
        return sum_begin(v, n) || sum_poll_all() ? -1 : 0;
    }
#endif
    (void)v;
    (void)n;
    return 0;
}

int lwl_comm_sum_wait(void)
{
#ifdef LWL_HAVE_MPI
    struct timespec nap = { 0, 200000 };
    for (int i = 0; i < nops; i++)
        while (ops[i].stage != SUM_DONE) {
            if (sum_poll(&ops[i]))
                return -1;
            if (ops[i].stage != SUM_DONE)
                nanosleep(&nap, NULL);
        }
    nops = 0;
#endif
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

/* ---- rank 0's bytes to every rank over TCP (lwl_comm_tcp_bcast). A rank connects and
 * says who it is (TCP_MAGIC, its rank, the world, the bytes it expects, big-endian);
 * rank 0 answers with the bytes and closes. Anything else that connects is turned away. */

#define TCP_MAGIC 0x4c574c31u   /* "LWL1" */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Sends (out 1) or receives all n bytes on fd before `deadline`; 0, or -1 with errno. */
static int io_all(int fd, void *buf, size_t n, int out, double deadline)
{
    char *p = buf;
    while (n > 0) {
        int ms = (int)((deadline - now_s()) * 1e3);
        if (ms <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        struct pollfd pf = { fd, out ? POLLOUT : POLLIN, 0 };
        int r = poll(&pf, 1, ms);
        if (r < 0 && errno != EINTR)
            return -1;
        if (r <= 0)
            continue;
        ssize_t k = out ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, 0);
        if (k < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
            continue;
        if (k <= 0) {
            if (k == 0)
                errno = ECONNRESET;
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* A listening socket on `port` of every address (IPv6 and IPv4 when it can), or -1. */
static int tcp_listen(int port, int backlog)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, zero = 0;
    if (fd >= 0) {
        struct sockaddr_in6 a6;
        memset(&a6, 0, sizeof a6);
        a6.sin6_family = AF_INET6;
        a6.sin6_addr = in6addr_any;
        a6.sin6_port = htons((uint16_t)port);
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
        if (bind(fd, (struct sockaddr *)&a6, sizeof a6) == 0 && listen(fd, backlog) == 0)
            return fd;
        if (errno == EADDRINUSE) {
            close(fd);
            return -1;
        }
        close(fd);
    }
    if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return -1;
    struct sockaddr_in a4;
    memset(&a4, 0, sizeof a4);
    a4.sin_family = AF_INET;
    a4.sin_addr.s_addr = htonl(INADDR_ANY);
    a4.sin_port = htons((uint16_t)port);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&a4, sizeof a4) == 0 && listen(fd, backlog) == 0)
        return fd;
    int keep = errno;
    close(fd);
    errno = keep;
    return -1;
}

/* Rank 0: serves blob to ranks 1 .. world - 1 as they come. */
static int tcp_serve(int world, int port, int timeout_s, const void *blob, size_t bytes,
                     char **err)
{
    int fd = tcp_listen(port, world);
    if (fd < 0) {
        *err = msg("rank 0: cannot listen on port %d: %s (LWL_BOOT_PORT chooses another)",
                   port, strerror(errno));
        return -1;
    }
    unsigned char *served = calloc((size_t)world, 1);
    double deadline = now_s() + timeout_s;
    int left = world - 1;
    while (served && left > 0) {
        int ms = (int)((deadline - now_s()) * 1e3);
        struct pollfd pf = { fd, POLLIN, 0 };
        if (ms <= 0)
            break;
        if (poll(&pf, 1, ms) <= 0)
            continue;
        int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
            continue;
        uint32_t h[4];
        double by = now_s() + 5 < deadline ? now_s() + 5 : deadline;
        if (io_all(c, h, sizeof h, 0, by) == 0 && ntohl(h[0]) == TCP_MAGIC &&
            (int)ntohl(h[2]) == world && ntohl(h[3]) == (uint32_t)bytes &&
            ntohl(h[1]) >= 1 && (int)ntohl(h[1]) < world && !served[ntohl(h[1])] &&
            io_all(c, (void *)blob, bytes, 1, by) == 0) {
            served[ntohl(h[1])] = 1;
            left--;
        }
        close(c);
    }
    close(fd);
    int missing = 1;
    while (served && missing < world && served[missing])
        missing++;
    free(served);
    if (left > 0)
        *err = msg("rank 0: %d of the other %d ranks came to port %d within %d s (rank %d did "
                   "not; LWL_BOOT_TIMEOUT sets the wait)", world - 1 - left, world - 1, port,
                   timeout_s, missing);
    return left > 0 ? -1 : 0;
}

/* A connection to one address of host:port within `ms`, or -1 with errno. */
static int tcp_connect(const struct addrinfo *ai, int ms)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                    ai->ai_protocol);
    if (fd < 0)
        return -1;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
        return fd;
    struct pollfd pf = { fd, POLLOUT, 0 };
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (errno == EINPROGRESS && poll(&pf, 1, ms) == 1 &&
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 && soerr == 0)
        return fd;
    int keep = soerr ? soerr : errno == EINPROGRESS ? ETIMEDOUT : errno;
    close(fd);
    errno = keep;
    return -1;
}

/* Rank `rank` > 0: asks rank 0 at host:port for the blob, again and again until it comes. */
static int tcp_fetch(int rank, int world, const char *host, int port, int timeout_s, void *blob,
                     size_t bytes, char **err)
{
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints, *ais = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int g = getaddrinfo(host, service, &hints, &ais);
    if (g != 0) {
        *err = msg("rank %d: cannot resolve rank 0's address %s: %s", rank, host,
                   gai_strerror(g));
        return -1;
    }
    uint32_t h[4] = { htonl(TCP_MAGIC), htonl((uint32_t)rank), htonl((uint32_t)world),
                      htonl((uint32_t)bytes) };
    double deadline = now_s() + timeout_s;
    int why = ETIMEDOUT;
    struct timespec nap = { 0, 100000000 };
    for (;;) {
        for (const struct addrinfo *ai = ais; ai; ai = ai->ai_next) {
            int ms = (int)((deadline - now_s()) * 1e3), fd;
            if (ms <= 0)
                break;
            if ((fd = tcp_connect(ai, ms < 2000 ? ms : 2000)) < 0) {
                why = errno;
                continue;
            }
            int ok = io_all(fd, h, sizeof h, 1, deadline) == 0 &&
                     io_all(fd, blob, bytes, 0, deadline) == 0;
            why = ok ? 0 : errno;
            close(fd);
            if (ok) {
                freeaddrinfo(ais);
                return 0;
            }
        }
        if (now_s() >= deadline)
            break;
        nanosleep(&nap, NULL);
    }
    freeaddrinfo(ais);
    *err = msg("rank %d: rank 0 did not answer at %s:%d within %d s (%s): is it running, and "
               "are MASTER_ADDR and the port (LWL_BOOT_PORT, else MASTER_PORT + 1) right?",
               rank, host, port, timeout_s, strerror(why));
    return -1;
}

int lwl_comm_tcp_bcast(int rank, int world, const char *host, int port, int timeout_s,
                       void *blob, size_t bytes, char **err)
{
    *err = NULL;
    if (world < 2)
        return 0;
    if (port < 1 || port > 65535 || rank < 0 || rank >= world || timeout_s < 1) {
        *err = msg("rank %d of %d: no port to meet on (port %d)", rank, world, port);
        return -1;
    }
    return rank == 0 ? tcp_serve(world, port, timeout_s, blob, bytes, err)
                     : tcp_fetch(rank, world, host, port, timeout_s, blob, bytes, err);
}

int lwl_comm_tcp_share(void *blob, size_t bytes, char **err)
{
    const char *host = getenv("MASTER_ADDR");
    int port = env_int("LWL_BOOT_PORT"), master = env_int("MASTER_PORT");
    int wait = env_int("LWL_BOOT_TIMEOUT");
    if (port < 1 && master >= 1)
        port = master + 1;
    if (!host || !*host || port < 1) {
        *err = msg("rank %d of %d (%s): MASTER_ADDR and MASTER_PORT (or LWL_BOOT_PORT) must "
                   "say where rank 0 listens", ranks.rank, ranks.world, ranks.launcher);
        return -1;
    }
    return lwl_comm_tcp_bcast(ranks.rank, ranks.world, host, port, wait >= 1 ? wait : 300,
                              blob, bytes, err);
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
    if (ranks.world > 1 && !strcmp(ranks.launcher, "torchrun"))
        fprintf(stderr, "rank %d of %d failed (see above): torchrun stops the others\n",
                ranks.rank, ranks.world);
    (void)code;
}

void lwl_comm_finalize(void)
{
#ifdef LWL_HAVE_MPI
    for (int i = 0; i < capops; i++) {
        free(ops[i].q);
        free(ops[i].tmp);
    }
    free(ops);
    ops = NULL;
    nops = capops = 0;
    if (grad_comm != MPI_COMM_NULL)
        MPI_Comm_free(&grad_comm);
    if (mpi_on)
        MPI_Finalize();
    mpi_on = 0;
#endif
}
