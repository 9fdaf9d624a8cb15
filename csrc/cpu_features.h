// Run-time detection of the instruction sets the kernel variants need.
#pragma once

namespace fcnnzoo {

// True when the CPU and the operating system support AVX-512F.
bool cpu_supports_avx512f();

// True when the CPU and the operating system support AVX2 and FMA3.
bool cpu_supports_avx2_fma();

// True when the CPU and the operating system support AVX-512F, BW, VL and VNNI.
bool cpu_supports_avx512_vnni();

// Always true: the portable variants need nothing beyond the base ISA.
bool cpu_supports_baseline();

}  // namespace fcnnzoo
