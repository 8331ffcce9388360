/* The GPUs of a data-parallel run through NCCL (lwl_gpu.h): the communicator's id goes
 * from rank 0 to the others through MPI when the ranks run under it, over TCP for
 * torchrun's ranks, else through a run-specific file. Sums run on the step's stream, but
 * the gradients' buckets on a stream of their own, overlapping the backward pass. */
#include "lwl_gpu.h"

#include <errno.h>
#include <nccl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lwl_comm.h"

#define NCCL_CK(call)                                                                    \
    do {                                                                                 \
        ncclResult_t r_ = (call);                                                        \
        if (r_ != ncclSuccess)                                                           \
            return lwl_cuda_fail(__FILE__, __LINE__, "NCCL", ncclGetErrorString(r_), #call); \
    } while (0)

/* How long a rank waits for rank 0's id file before it gives up. */
#define ID_WAIT_S 600

static ncclComm_t comm;
static int joined;
static cudaStream_t comm_stream;    /* the gradients' buckets */
static cudaEvent_t made, summed;    /* a bucket's gradients made; every bucket summed */
static int buckets;                 /* started since the last lwl_gcomm_sum_wait */

/* Rank 0 writes the id to idfile (via idfile.tmp, then rename); the others wait for it. */
static int id_by_file(int rank, const char *idfile, ncclUniqueId *id)
{
    if (rank == 0) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", idfile);
        FILE *f = fopen(tmp, "wb");
        if (!f || fwrite(id, sizeof *id, 1, f) != 1 || fflush(f) || fsync(fileno(f))) {
            if (f)
                fclose(f);
            return lwl_cuda_fail(__FILE__, __LINE__, "stdio", strerror(errno), idfile);
        }
        if (fclose(f) || rename(tmp, idfile))
            return lwl_cuda_fail(__FILE__, __LINE__, "stdio", strerror(errno), idfile);
        return 0;
    }
    struct timespec nap = { 0, 50000000 };
    for (int tries = 0; tries < ID_WAIT_S * 20; tries++) {
        FILE *f = fopen(idfile, "rb");
        if (f) {
            size_t got = fread(id, sizeof *id, 1, f);
            fclose(f);
            if (got == 1)
                return 0;
        }
        nanosleep(&nap, NULL);
    }
    return lwl_cuda_fail(__FILE__, __LINE__, "NCCL", "rank 0's id never came", idfile);
}

int lwl_gcomm_init(int rank, int world, const char *idfile)
{
    if (joined || world < 2)
        return 0;
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    if (rank == 0)
        NCCL_CK(ncclGetUniqueId(&id));
    if (lwl_comm_mpi() && lwl_comm_world() == world) {
        if (lwl_comm_bcast_bytes(&id, sizeof id))
            return lwl_cuda_fail(__FILE__, __LINE__, "MPI", "broadcast failed", "NCCL id");
    } else if (!strcmp(lwl_comm_ranks()->launcher, "torchrun") && lwl_comm_world() == world) {
        char *err = NULL;
        if (lwl_comm_tcp_share(&id, sizeof id, &err)) {
            lwl_cuda_fail(__FILE__, __LINE__, "TCP", err ? err : "failed", "NCCL id");
            free(err);
            return -1;
        }
    } else if (!idfile || id_by_file(rank, idfile, &id)) {
        return idfile ? -1 : lwl_cuda_fail(__FILE__, __LINE__, "NCCL", "no way to share the id",
                                           "lwl_gcomm_init");
    }
    NCCL_CK(ncclCommInitRank(&comm, world, id, rank));
    joined = 1;
    CUDA_CK(cudaStreamCreateWithFlags(&comm_stream, cudaStreamNonBlocking));
    CUDA_CK(cudaEventCreateWithFlags(&made, cudaEventDisableTiming));
    CUDA_CK(cudaEventCreateWithFlags(&summed, cudaEventDisableTiming));
    return 0;
}

/* The bucket's gradients are final once the step's stream gets here: the bucket stream
 * waits for that point, then sums them, while the step's stream goes on backward. */
int lwl_gcomm_sum_start(float *dev, size_t n)
{
    CUDA_CK(cudaEventRecord(made, lwl_gpu_stream()));
    CUDA_CK(cudaStreamWaitEvent(comm_stream, made, 0));
    NCCL_CK(ncclAllReduce(dev, dev, n, ncclFloat32, ncclSum, comm, comm_stream));
    buckets++;
    return 0;
}

int lwl_gcomm_sum_wait(void)
{
    if (!buckets)
        return 0;
    CUDA_CK(cudaEventRecord(summed, comm_stream));
    CUDA_CK(cudaStreamWaitEvent(lwl_gpu_stream(), summed, 0));
    buckets = 0;
    return 0;
}

int lwl_gcomm_sum_f(float *dev, size_t n)
{
    NCCL_CK(ncclAllReduce(dev, dev, n, ncclFloat32, ncclSum, comm, lwl_gpu_stream()));
    return 0;
}

int lwl_gcomm_sum_d(double *dev, size_t n)
{
    NCCL_CK(ncclAllReduce(dev, dev, n, ncclFloat64, ncclSum, comm, lwl_gpu_stream()));
    return 0;
}

int lwl_gcomm_bcast(void *dev, size_t bytes)
{
    NCCL_CK(ncclBroadcast(dev, dev, bytes, ncclUint8, 0, comm, lwl_gpu_stream()));
    return 0;
}

void lwl_gcomm_free(void)
{
    if (joined) {
        cudaStreamSynchronize(comm_stream);
        ncclCommDestroy(comm);
        cudaEventDestroy(made);
        cudaEventDestroy(summed);
        cudaStreamDestroy(comm_stream);
    }
    joined = 0;
    buckets = 0;
}
