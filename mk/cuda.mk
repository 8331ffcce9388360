# The CUDA side of the runtime, built when nvcc is found: runtime/cuda/*.cu into
# $(B)/liblwl_cuda.a, which lwlc links into the programs it builds for --target cuda/all.
# cuDNN, cuBLAS and NCCL come from the CUDA toolkit's directories, or from CUDNN_HOME and
# NCCL_HOME (e.g. the nvidia-cudnn-cu13 / nvidia-nccl-cu13 Python packages).
NVCC      ?= $(shell command -v nvcc 2>/dev/null || \
               { test -x /usr/local/cuda/bin/nvcc && echo /usr/local/cuda/bin/nvcc; })
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
CUDA_ARCH ?= 80 90
CUDNN_HOME ?= $(CUDA_HOME)
NCCL_HOME  ?= $(CUDA_HOME)
NVCC_GENCODE := $(foreach a,$(CUDA_ARCH),-gencode arch=compute_$(a),code=sm_$(a))
CUDA_INC  := $(sort -I$(CUDNN_HOME)/include -I$(NCCL_HOME)/include)
NVCC_INC  := -Iruntime -Iruntime/cuda $(CUDA_INC)
# Warnings are errors: the CUDA build must stay as clean as the C build. lwlc builds the
# generated net.cu with NVCC_BASE and NVCC_GENCODE (or CUDA_ARCH's at its run).
NVCC_BASE := -O3 -std=c++17 --Werror all-warnings -Xcompiler -Wall,-Wextra,-Werror -D_GNU_SOURCE
NVCC_FLAGS := $(NVCC_BASE) $(NVCC_GENCODE) -Xcompiler -Wno-unused-function
CUDA_LIBDIRS := $(sort $(CUDA_HOME)/lib64 $(CUDNN_HOME)/lib $(CUDNN_HOME)/lib64 \
                $(NCCL_HOME)/lib $(NCCL_HOME)/lib64)
CUDA_LIBS := $(foreach d,$(wildcard $(CUDA_LIBDIRS)),-L$(d) -Wl,-rpath,$(d)) \
             -lcudnn -lcublasLt -lcublas -lnccl -lcudart

CUDA_SRC := $(wildcard runtime/cuda/*.cu)
CUDA_OBJ := $(patsubst runtime/cuda/%.cu,$(B)/cuda/%.o,$(CUDA_SRC))

ifneq ($(NVCC),)
ifneq ($(CUDA_SRC),)
all: $(B)/liblwl_cuda.a
endif
endif

$(B)/cuda/%.o: runtime/cuda/%.cu $(wildcard runtime/cuda/*.h runtime/cuda/*.cuh) \
               $(wildcard runtime/*.h)
	@mkdir -p $(B)/cuda
	$(NVCC) $(NVCC_FLAGS) $(NVCC_INC) -c -o $@ $<

$(B)/liblwl_cuda.a: $(CUDA_OBJ)
	rm -f $@
	ar rcs $@ $^

# The GPU emulated on the host for the tests (tests/emu/): LWLC_GPU_EMULATE=1 lwlc links it.
CXX ?= c++
$(B)/emu/lwl_gpu_emu.o: tests/emu/lwl_gpu_emu.cc compiler/tmpl/gpu_kernels.h \
                        compiler/tmpl/kernels.h runtime/cuda/lwl_gpu.h runtime/cuda/lwl_cuda.h \
                        runtime/lwl_comm.h
	@mkdir -p $(B)/emu
	$(CXX) -std=c++17 -O2 -Wall -Wextra -Icompiler/tmpl -Iruntime -Iruntime/cuda -c -o $@ $<

all: $(B)/emu/lwl_gpu_emu.o

# The GPU kNN on the emulated device against the CPU's (tests/t/62-gpu-knn.t).
$(B)/emu/test_knn: tests/emu/test_knn.cc compiler/tmpl/gpu_ops.cuh compiler/tmpl/gpu_kernels.h \
                   compiler/tmpl/kernels.h $(B)/emu/lwl_gpu_emu.o $(B)/liblwl.a
	$(CXX) -std=c++17 -O2 -Wall -Wextra -Wno-unused-function -Icompiler/tmpl -Iruntime \
	  -Iruntime/cuda -o $@ $< $(B)/emu/lwl_gpu_emu.o $(B)/liblwl.a $(RUNTIME_LIBS)

unit: $(B)/emu/test_knn
