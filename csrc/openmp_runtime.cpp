#include "openmp_runtime.h"

#include <cstdlib>
#include <cstring>

#if defined(__unix__) || defined(__APPLE__)
#include <dlfcn.h>
#endif

namespace fcnnzoo {
namespace {

OpenMpRuntime find_runtime(bool& found) {
  OpenMpRuntime runtime{nullptr, nullptr};
  found = false;
#if defined(__unix__) || defined(__APPLE__)
  const char* choice = std::getenv("FCNNZOO_PARALLEL");
  if (choice != nullptr && std::strcmp(choice, "pool") == 0) {
    return runtime;
  }
  // GNU OpenMP (PyTorch's Linux wheels), then LLVM's and Intel's runtimes.
  const char* const names[] = {"libgomp.so.1", "libomp.so", "libomp.so.5", "libiomp5.so", "libomp.dylib",
                               "libiomp5.dylib"};
  for (const char* name : names) {
    // RTLD_NOLOAD returns a handle only if the library is loaded already.
    void* library = dlopen(name, RTLD_NOW | RTLD_NOLOAD);
    if (library == nullptr) {
      continue;
    }
    void* parallel = dlsym(library, "GOMP_parallel");
    void* thread_number = dlsym(library, "omp_get_thread_num");
    if (parallel != nullptr && thread_number != nullptr) {
      runtime.parallel = reinterpret_cast<decltype(runtime.parallel)>(parallel);
      runtime.thread_number = reinterpret_cast<decltype(runtime.thread_number)>(thread_number);
      found = true;
      // The handle stays open: the runtime must outlive every later call.
      return runtime;
    }
    dlclose(library);
  }
#endif
  return runtime;
}

}  // namespace

const OpenMpRuntime* loaded_openmp_runtime() {
  // Looked up once: from Python, PyTorch has loaded its runtime before any
  // kernel runs, because fcnnzoo imports torch first.
  static bool found = false;
  static const OpenMpRuntime runtime = find_runtime(found);
  return found ? &runtime : nullptr;
}

}  // namespace fcnnzoo
