#include "cpu_features.h"

namespace fcnnzoo {

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)

// __builtin_cpu_supports consults CPUID and, for AVX and AVX-512, whether the
// operating system saves the wider registers (XGETBV).
bool cpu_supports_avx512f() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f");
}

bool cpu_supports_avx2_fma() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

// Every CPU with AVX-512 VNNI also has AVX-512BW and VL, which the int8
// kernel's byte stores use; they are checked all the same.
bool cpu_supports_avx512_vnni() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vnni") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
}

#else

bool cpu_supports_avx512f() { return false; }

bool cpu_supports_avx512_vnni() { return false; }

bool cpu_supports_avx2_fma() { return false; }

#endif

bool cpu_supports_baseline() { return true; }

}  // namespace fcnnzoo
