"""The CUDA backends: the C backend's node bodies spelt as CUDA kernels
(docs/cuda.md).

    render.py   lowered rules -> CUDA C (templates/cuda.cu.j2), a group of
                lanes per node; the kernels' parameters as data (KernelInfo)
    host.py     the host loop over a device: lane bins, launches, buffer
                swaps, the per-copy stop flags; batches of states
    nvrtc.py    NVRTC through ctypes: CUDA source -> CUBIN, cached by content
    gpu.py      the device: CuPy arrays and launches of the NVRTC CUBIN
    cpu.py      the same kernel text built for the CPU (runtime/rulec_cuda.h's
                CPU form): how the backend is verified without a GPU
    backend.py  CudaBackend ('cuda') and CudaCpuBackend ('cuda-cpu')
    errors.py   CudaError
"""
