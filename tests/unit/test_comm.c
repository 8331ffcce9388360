/* The ranks' launch variables (which launcher wins when several set theirs, SLURM's task
 * lists) and the TCP exchange that hands rank 0's bytes (NCCL's id) to torchrun's ranks:
 * lwl_comm.h without MPI collectives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cmocka.h>

#include "lwl_comm.h"

static const char *const launch_vars[] = {
    "LWL_RANK", "LWL_WORLD", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE",
    "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
    "OMPI_COMM_WORLD_LOCAL_SIZE", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS",
    "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_NTASKS_PER_NODE",
    "SLURM_TASKS_PER_NODE", "SLURM_NODEID", "MASTER_ADDR", "MASTER_PORT", "LWL_BOOT_PORT",
    "LWL_BOOT_TIMEOUT",
};

/* A clean environment, then the pairs NAME, VALUE given (NULL-terminated). */
static void env(const char *name, ...)
{
    for (size_t i = 0; i < sizeof launch_vars / sizeof launch_vars[0]; i++)
        unsetenv(launch_vars[i]);
    va_list ap;
    va_start(ap, name);
    for (const char *n = name; n; n = va_arg(ap, const char *))
        setenv(n, va_arg(ap, const char *), 1);
    va_end(ap);
}

static void expect(int rank, int world, int local_rank, int local_world, const char *launcher)
{
    lwl_ranks r = lwl_ranks_from_env();
    assert_int_equal(r.rank, rank);
    assert_int_equal(r.world, world);
    assert_int_equal(r.local_rank, local_rank);
    assert_int_equal(r.local_world, local_world);
    assert_string_equal(r.launcher, launcher);
}

static void test_each_launcher(void **state)
{
    (void)state;
    env(NULL);
    expect(0, 1, 0, 1, "none");
    env("OMPI_COMM_WORLD_RANK", "3", "OMPI_COMM_WORLD_SIZE", "4", "OMPI_COMM_WORLD_LOCAL_RANK",
        "1", "OMPI_COMM_WORLD_LOCAL_SIZE", "2", NULL);
    expect(3, 4, 1, 2, "mpirun");
    env("PMI_RANK", "1", "PMI_SIZE", "2", NULL);
    expect(1, 2, 1, 2, "pmi");
    env("SLURM_PROCID", "5", "SLURM_NTASKS", "8", "SLURM_LOCALID", "1", NULL);
    expect(5, 8, 1, 8, "slurm");
    env("RANK", "2", "WORLD_SIZE", "4", "LOCAL_RANK", "0", "LOCAL_WORLD_SIZE", "2", NULL);
    expect(2, 4, 0, 2, "torchrun");
    env("LWL_RANK", "1", "LWL_WORLD", "2", NULL);
    expect(1, 2, 1, 2, "lwl");
}

/* SLURM_NTASKS_PER_NODE (else SLURM_TASKS_PER_NODE) lists tasks per node, "N(xK)" for K
 * nodes of N; SLURM_NODEID picks this node's entry. */
static void test_slurm_tasks_per_node(void **state)
{
    (void)state;
    env("SLURM_PROCID", "5", "SLURM_NTASKS", "6", "SLURM_LOCALID", "1",
        "SLURM_NTASKS_PER_NODE", "2(x3)", "SLURM_NODEID", "2", NULL);
    expect(5, 6, 1, 2, "slurm");
    env("SLURM_PROCID", "4", "SLURM_NTASKS", "5", "SLURM_LOCALID", "0",
        "SLURM_TASKS_PER_NODE", "2(x2),1", "SLURM_NODEID", "2", NULL);
    expect(4, 5, 0, 1, "slurm");
    env("SLURM_PROCID", "1", "SLURM_NTASKS", "4", "SLURM_LOCALID", "1",
        "SLURM_TASKS_PER_NODE", "3,1", NULL);
    expect(1, 4, 1, 3, "slurm");     /* no SLURM_NODEID: the first node's */
    env("SLURM_PROCID", "1", "SLURM_NTASKS", "4", "SLURM_LOCALID", "1",
        "SLURM_NTASKS_PER_NODE", "4", "SLURM_TASKS_PER_NODE", "1(x4)", NULL);
    expect(1, 4, 1, 4, "slurm");     /* SLURM_NTASKS_PER_NODE first */
    /* malformed or too short: the tasks of the whole run */
    const char *bad[] = { "2(x", "2(3)", "x2", "2(x3)y", "0", "2(x2)", "" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        env("SLURM_PROCID", "1", "SLURM_NTASKS", "4", "SLURM_LOCALID", "1",
            "SLURM_NTASKS_PER_NODE", bad[i], "SLURM_NODEID", "2", NULL);
        expect(1, 4, 1, 4, "slurm");
    }
}

/* The innermost launcher wins: the program's own GPU ranks, then torchrun (often under
 * srun), then mpirun / MPICH (under SLURM), then SLURM. */
static void test_precedence(void **state)
{
    (void)state;
    const char *slurm[] = { "SLURM_PROCID", "0", "SLURM_NTASKS", "1", "SLURM_LOCALID", "0" };
    env(slurm[0], slurm[1], slurm[2], slurm[3], slurm[4], slurm[5], "OMPI_COMM_WORLD_RANK",
        "1", "OMPI_COMM_WORLD_SIZE", "2", NULL);
    expect(1, 2, 1, 2, "mpirun");
    env(slurm[0], slurm[1], slurm[2], slurm[3], slurm[4], slurm[5], "PMI_RANK", "1", "PMI_SIZE",
        "2", NULL);
    expect(1, 2, 1, 2, "pmi");
    env("SLURM_PROCID", "1", "SLURM_NTASKS", "2", "SLURM_LOCALID", "0", "RANK", "3",
        "WORLD_SIZE", "4", "LOCAL_RANK", "1", "LOCAL_WORLD_SIZE", "2", NULL);
    expect(3, 4, 1, 2, "torchrun");
    env("OMPI_COMM_WORLD_RANK", "0", "OMPI_COMM_WORLD_SIZE", "1", "LWL_RANK", "1", "LWL_WORLD",
        "2", NULL);
    expect(1, 2, 1, 2, "lwl");      /* a rank started by a program that mpirun -np 1 ran */
    /* a set that makes no sense is passed over */
    env("RANK", "4", "WORLD_SIZE", "4", "OMPI_COMM_WORLD_RANK", "1", "OMPI_COMM_WORLD_SIZE",
        "2", NULL);
    expect(1, 2, 1, 2, "mpirun");
    env("RANK", "0", "OMPI_COMM_WORLD_RANK", "x", "OMPI_COMM_WORLD_SIZE", "2", NULL);
    expect(0, 1, 0, 1, "none");
}

/* torchrun's ranks join without MPI (they meet through NCCL). */
static void test_torchrun_joins(void **state)
{
    (void)state;
    env("RANK", "1", "WORLD_SIZE", "2", "LOCAL_RANK", "1", NULL);
    int argc = 1;
    char *args[] = { "test", NULL }, **argv = args, *err = NULL;
    assert_int_equal(lwl_comm_init(&argc, &argv, &err), 0);
    assert_null(err);
    assert_int_equal(lwl_comm_rank(), 1);
    assert_int_equal(lwl_comm_world(), 2);
    assert_int_equal(lwl_comm_mpi(), 0);
}

/* A port no one listens on (the kernel's pick, given back). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* Rank 0 and two more ranks in processes of their own; the others come first, before rank 0
 * listens, and retry. */
static void test_tcp_bcast(void **state)
{
    (void)state;
    unsigned char blob[128], got[128];
    for (int i = 0; i < 128; i++)
        blob[i] = (unsigned char)(i * 7 + 3);
    int port = free_port();
    pid_t kids[2];
    for (int k = 0; k < 2; k++) {
        if ((kids[k] = fork()) == 0) {
            char *err = NULL;
            memset(got, 0, sizeof got);
            int rc = lwl_comm_tcp_bcast(k + 1, 3, "localhost", port, 20, got, sizeof got, &err);
            if (err)
                fprintf(stderr, "%s\n", err);
            _exit(rc == 0 && memcmp(got, blob, sizeof blob) == 0 ? 0 : 1);
        }
        assert_true(kids[k] > 0);
    }
    usleep(300000);
    char *err = NULL;
    int rc = lwl_comm_tcp_bcast(0, 3, NULL, port, 20, blob, sizeof blob, &err);
    if (err)
        fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, 0);
    for (int k = 0; k < 2; k++) {
        int status = -1;
        assert_int_equal(waitpid(kids[k], &status, 0), kids[k]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
}

/* Nobody there: each side gives up after its timeout, saying who and where. */
static void test_tcp_timeouts(void **state)
{
    (void)state;
    unsigned char blob[16] = { 0 };
    char *err = NULL, want[160];
    int port = free_port();
    assert_int_equal(lwl_comm_tcp_bcast(1, 2, "127.0.0.1", port, 1, blob, sizeof blob, &err),
                     -1);
    snprintf(want, sizeof want, "rank 1: rank 0 did not answer at 127.0.0.1:%d within 1 s", port);
    assert_non_null(err);
    assert_non_null(strstr(err, want));
    free(err);
    assert_int_equal(lwl_comm_tcp_bcast(0, 3, NULL, port, 1, blob, sizeof blob, &err), -1);
    snprintf(want, sizeof want, "rank 0: 0 of the other 2 ranks came to port %d within 1 s "
             "(rank 1 did not;", port);
    assert_non_null(err);
    assert_non_null(strstr(err, want));
    free(err);
    assert_int_equal(lwl_comm_tcp_bcast(1, 2, "no-such-host.invalid", port, 1, blob,
                                        sizeof blob, &err), -1);
    assert_non_null(strstr(err, "rank 1: cannot resolve rank 0's address no-such-host.invalid"));
    free(err);
}

/* torchrun's variables say where: MASTER_ADDR, MASTER_PORT + 1 unless LWL_BOOT_PORT. */
static void test_tcp_share_where(void **state)
{
    (void)state;
    unsigned char blob[16];
    char *err = NULL, want[96];
    int argc = 1;
    char *args[] = { "test", NULL }, **argv = args;
    int port = free_port();
    char mp[16];
    snprintf(mp, sizeof mp, "%d", port - 1);
    env("RANK", "1", "WORLD_SIZE", "2", "MASTER_ADDR", "127.0.0.1", "MASTER_PORT", mp,
        "LWL_BOOT_TIMEOUT", "1", NULL);
    assert_int_equal(lwl_comm_init(&argc, &argv, &err), 0);
    assert_int_equal(lwl_comm_tcp_share(blob, sizeof blob, &err), -1);
    snprintf(want, sizeof want, "at 127.0.0.1:%d within 1 s", port);
    assert_non_null(strstr(err, want));
    free(err);
    setenv("LWL_BOOT_PORT", mp, 1);
    assert_int_equal(lwl_comm_tcp_share(blob, sizeof blob, &err), -1);
    snprintf(want, sizeof want, "at 127.0.0.1:%d within 1 s", port - 1);
    assert_non_null(strstr(err, want));
    free(err);
    unsetenv("MASTER_ADDR");
    assert_int_equal(lwl_comm_tcp_share(blob, sizeof blob, &err), -1);
    assert_non_null(strstr(err, "MASTER_ADDR and MASTER_PORT (or LWL_BOOT_PORT) must say"));
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_launcher),  cmocka_unit_test(test_slurm_tasks_per_node),
        cmocka_unit_test(test_precedence),     cmocka_unit_test(test_torchrun_joins),
        cmocka_unit_test(test_tcp_bcast),      cmocka_unit_test(test_tcp_timeouts),
        cmocka_unit_test(test_tcp_share_where),
    };

    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
