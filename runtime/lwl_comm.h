/* The ranks of a data-parallel run: which rank this process is, read from the
 * launcher's variables, and the collectives the CPU step needs, through MPI
 * when liblwl was built with it (one process otherwise, where they do nothing). */
#ifndef LWL_COMM_H
#define LWL_COMM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lwl_ranks {
    int rank, world;            /* this process among all; world 1 for one process */
    int local_rank, local_world;  /* among the processes of this machine */
    const char *launcher;       /* "mpirun", "slurm", "pmi", "torchrun" or "none" */
} lwl_ranks;

/* What the launch variables say; world 1 when none is set. The innermost launcher wins:
 * LWL_RANK / LWL_WORLD (the GPU ranks a program started itself), then torchrun's RANK /
 * WORLD_SIZE / LOCAL_RANK / LOCAL_WORLD_SIZE, OMPI_COMM_WORLD_*, PMI_RANK / PMI_SIZE
 * (MPICH), SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID. SLURM's tasks on this node come
 * from SLURM_NTASKS_PER_NODE or SLURM_TASKS_PER_NODE ("2(x3),1": 2 on each of the first
 * three nodes, then 1), the entry of SLURM_NODEID. A set that does not make sense (a rank
 * not below its world) is skipped. */
lwl_ranks lwl_ranks_from_env(void);

/* Joins the run the launcher started: MPI_Init when world > 1 (not for torchrun's ranks
 * and the program's own GPU ranks, which meet through NCCL). 0, or -1 with *err malloc'd
 * (built without MPI). */
int lwl_comm_init(int *argc, char ***argv, char **err);
const lwl_ranks *lwl_comm_ranks(void);
int lwl_comm_rank(void);
int lwl_comm_world(void);
/* 1 when this liblwl can run CPU ranks (was built with MPI). */
int lwl_comm_has_mpi(void);
/* 1 when the ranks of this run talk through MPI (else they are one process, or GPU ranks
 * that meet through NCCL: the program's own, LWL_RANK / LWL_WORLD, or torchrun's). */
int lwl_comm_mpi(void);

/* Collectives over all ranks, in place. The result is the same bits on every
 * rank (reduced on rank 0, then broadcast). 0, or -1 with a message on stderr. */
int lwl_comm_sum_d(double *v, size_t n);
int lwl_comm_sum_f(float *v, size_t n);
/* v = the mean over ranks. */
int lwl_comm_mean_f(float *v, size_t n);
/* Rank 0's n floats (or doubles, or bytes) to every rank. */
int lwl_comm_bcast_f(float *v, size_t n);
int lwl_comm_bcast_bytes(void *v, size_t n);
/* The gradients' sum over the ranks in buckets, overlapping the backward pass: starts
 * the in-place sum of v[0..n) (n below 2^31) without waiting for it, with the bits of
 * lwl_comm_sum_f (rank 0 adds every other rank's bucket in rank order, then sends the sum
 * back), and moves the sums started before on. v stays the caller's until
 * lwl_comm_sum_wait. Every rank starts the same buckets in the same order. 0 or -1 (a
 * message on stderr); nothing to do in one process. */
int lwl_comm_sum_start(float *v, size_t n);
/* Waits for every sum started, sleeping between polls. 0 or -1. */
int lwl_comm_sum_wait(void);
/* The largest of v over ranks (for agreeing on a status). */
int lwl_comm_max_i(int *v);
int lwl_comm_barrier(void);

/* Rank 0's `bytes` at blob to every rank over TCP, for ranks without MPI (torchrun's
 * GPU ranks share NCCL's id so): rank 0 listens on `port`, the others connect to
 * host:port, retrying until rank 0 is there, for at most timeout_s seconds in all.
 * 0, or -1 with *err malloc'd (who could not reach whom, and for how long). */
int lwl_comm_tcp_bcast(int rank, int world, const char *host, int port, int timeout_s,
                       void *blob, size_t bytes, char **err);
/* lwl_comm_tcp_bcast for this run's ranks at torchrun's MASTER_ADDR, port LWL_BOOT_PORT
 * or else MASTER_PORT + 1 (torchrun's own store may hold MASTER_PORT), within
 * LWL_BOOT_TIMEOUT seconds (default 300). */
int lwl_comm_tcp_share(void *blob, size_t bytes, char **err);

/* Ends every rank after this one failed: says which, then MPI_Abort. Returns without
 * MPI (one process, or ranks whose launcher ends the others: torchrun, or rank 0 of the
 * program's own GPU ranks). */
void lwl_comm_abort(int code);
void lwl_comm_finalize(void);

#ifdef __cplusplus
}
#endif

#endif
