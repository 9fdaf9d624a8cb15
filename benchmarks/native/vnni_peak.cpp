// Measures the peak rate of vpdpbusd (AVX-512 VNNI, u8 x s8 -> s32) on one
// core: 24 independent accumulator chains, so latency never limits the
// throughput. Prints instructions per second and GMAC/s (one zmm vpdpbusd
// is 64 multiply-adds), per second of wall time and per second of the
// thread's CPU time. The CPU-time rate is less sensitive to other processes.
//
// Build and run (x86-64 with AVX-512 VNNI only):
//   g++ -O3 -mavx512f -mavx512vnni benchmarks/native/vnni_peak.cpp -o /tmp/vnni_peak && /tmp/vnni_peak
#include <immintrin.h>

#include <time.h>

#include <chrono>
#include <cstdint>
#include <cstdio>

namespace {

constexpr int kChains = 24;  // zmm8 to zmm31 in run_zmm
constexpr int64_t kIterations = 20'000'000;

struct Seconds {
  double wall;
  double cpu;
};

double thread_cpu_seconds() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) * 1e-9;
}

// The 24 accumulators live in zmm8 to zmm31, written out in assembly so the
// compiler can neither keep them in memory nor merge the chains.
#define FCNNZOO_DPBUSD(register_name) "vpdpbusd %[weights], %[activations], %%" register_name "\n\t"

Seconds run_zmm() {
  const __m512i activations = _mm512_set1_epi32(0x01020304);
  const __m512i weights = _mm512_set1_epi32(0x01FF0102);
  const auto start = std::chrono::steady_clock::now();
  const double cpu_start = thread_cpu_seconds();
  for (int64_t iteration = 0; iteration < kIterations; ++iteration) {
    __asm__ volatile(FCNNZOO_DPBUSD("zmm8") FCNNZOO_DPBUSD("zmm9") FCNNZOO_DPBUSD("zmm10") FCNNZOO_DPBUSD("zmm11")
                     FCNNZOO_DPBUSD("zmm12") FCNNZOO_DPBUSD("zmm13") FCNNZOO_DPBUSD("zmm14") FCNNZOO_DPBUSD("zmm15")
                     FCNNZOO_DPBUSD("zmm16") FCNNZOO_DPBUSD("zmm17") FCNNZOO_DPBUSD("zmm18") FCNNZOO_DPBUSD("zmm19")
                     FCNNZOO_DPBUSD("zmm20") FCNNZOO_DPBUSD("zmm21") FCNNZOO_DPBUSD("zmm22") FCNNZOO_DPBUSD("zmm23")
                     FCNNZOO_DPBUSD("zmm24") FCNNZOO_DPBUSD("zmm25") FCNNZOO_DPBUSD("zmm26") FCNNZOO_DPBUSD("zmm27")
                     FCNNZOO_DPBUSD("zmm28") FCNNZOO_DPBUSD("zmm29") FCNNZOO_DPBUSD("zmm30") FCNNZOO_DPBUSD("zmm31")
                     :
                     : [activations] "v"(activations), [weights] "v"(weights)
                     : "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17",
                       "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27",
                       "xmm28", "xmm29", "xmm30", "xmm31");
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double cpu = thread_cpu_seconds() - cpu_start;
  return {wall, cpu};
}

}  // namespace

int main() {
  run_zmm();  // warm-up: lets the core reach its AVX-512 clock
  const Seconds seconds = run_zmm();
  const double instructions = static_cast<double>(kIterations) * kChains;
  std::printf("vpdpbusd zmm per wall second: %.3f G instructions, %.1f GMAC per core\n",
              instructions / seconds.wall * 1e-9, instructions * 64 / seconds.wall * 1e-9);
  std::printf("vpdpbusd zmm per CPU second:  %.3f G instructions, %.1f GMAC per core\n",
              instructions / seconds.cpu * 1e-9, instructions * 64 / seconds.cpu * 1e-9);
  return 0;
}
