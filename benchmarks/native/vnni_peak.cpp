// Measures the peak rate of vpdpbusd (AVX-512 VNNI, u8 x s8 -> s32) on one
// core: 24 independent accumulator chains, so latency never limits the
// throughput. Prints instructions per cycle-equivalent and GMAC/s (one
// zmm vpdpbusd is 64 multiply-adds).
//
// Build and run (x86-64 with AVX-512 VNNI only):
//   g++ -O2 -mavx512f -mavx512vnni benchmarks/native/vnni_peak.cpp -o /tmp/vnni_peak && /tmp/vnni_peak
#include <immintrin.h>

#include <chrono>
#include <cstdint>
#include <cstdio>

namespace {

constexpr int kChains = 24;
constexpr int64_t kIterations = 20'000'000;

double run_zmm() {
  __m512i accumulators[kChains];
  for (int chain = 0; chain < kChains; ++chain) {
    accumulators[chain] = _mm512_set1_epi32(chain);
  }
  const __m512i activations = _mm512_set1_epi32(0x01020304);
  const __m512i weights = _mm512_set1_epi32(0x01FF0102);
  const auto start = std::chrono::steady_clock::now();
  for (int64_t iteration = 0; iteration < kIterations; ++iteration) {
    for (int chain = 0; chain < kChains; ++chain) {
      accumulators[chain] = _mm512_dpbusd_epi32(accumulators[chain], activations, weights);
    }
    // Keeps the compiler from hoisting or merging the chains.
    __asm__ volatile("" : "+v"(accumulators[0]), "+v"(accumulators[1]), "+v"(accumulators[2]));
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  __m512i total = accumulators[0];
  for (int chain = 1; chain < kChains; ++chain) {
    total = _mm512_add_epi32(total, accumulators[chain]);
  }
  volatile int sink = _mm512_reduce_add_epi32(total);
  (void)sink;
  return seconds;
}

}  // namespace

int main() {
  run_zmm();  // warm-up: lets the core reach its AVX-512 clock
  const double seconds = run_zmm();
  const double instructions = static_cast<double>(kIterations) * kChains;
  std::printf("vpdpbusd zmm: %.3f G instructions/s, %.1f GMAC/s per core\n", instructions / seconds * 1e-9,
              instructions * 64 / seconds * 1e-9);
  return 0;
}
