// Access to an OpenMP runtime that the process has already loaded, such as
// the GNU OpenMP library that PyTorch ships. The kernels run their parallel
// work on its threads, so the process keeps a single set of threads.
// PyTorch's OpenMP workers spin for a while after each parallel region, and
// a second pool of threads would compete with them for the cores.
#pragma once

namespace fcnnzoo {

// The entry points of a loaded OpenMP runtime. GOMP_parallel is the GNU
// OpenMP ABI, which LLVM's and Intel's runtimes also export.
struct OpenMpRuntime {
  void (*parallel)(void (*function)(void*), void* data, unsigned thread_count, unsigned flags);
  int (*thread_number)();
};

// The runtime already loaded into the process, or null when there is none
// or FCNNZOO_PARALLEL=pool selects the kernels' own threads. The lookup
// only finds libraries that are loaded already and never loads one.
const OpenMpRuntime* loaded_openmp_runtime();

}  // namespace fcnnzoo
