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

/* What the launch variables say (OMPI_COMM_WORLD_*, PMI_*, SLURM_*, torchrun's RANK /
 * WORLD_SIZE / LOCAL_RANK, then LWL_RANK / LWL_WORLD of the GPU ranks a program started
 * itself); world 1 when none is set. */
lwl_ranks lwl_ranks_from_env(void);

/* Joins the run the launcher started: MPI_Init when world > 1. 0, or -1 with
 * *err malloc'd (built without MPI, or started by a launcher MPI cannot join). */
int lwl_comm_init(int *argc, char ***argv, char **err);
const lwl_ranks *lwl_comm_ranks(void);
int lwl_comm_rank(void);
int lwl_comm_world(void);
/* 1 when this liblwl can run CPU ranks (was built with MPI). */
int lwl_comm_has_mpi(void);
/* 1 when the ranks of this run talk through MPI (else they are one process, or GPU ranks
 * the program started itself, LWL_RANK / LWL_WORLD, which meet through NCCL). */
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
/* The largest of v over ranks (for agreeing on a status). */
int lwl_comm_max_i(int *v);
int lwl_comm_barrier(void);

/* Ends every rank after this one failed: says which, then MPI_Abort. Returns
 * only in a one-process run. */
void lwl_comm_abort(int code);
void lwl_comm_finalize(void);

#ifdef __cplusplus
}
#endif

#endif
