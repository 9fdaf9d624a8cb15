// The task functions of the fast kernels for AVX-512F (with FMA).
// CMakeLists.txt compiles this file with the matching instruction-set flags.
#include "conv_relu_pool_direct_body.h"
#include "conv_relu_pool_plan.h"
#include "conv_relu_pool_winograd_body.h"

namespace fcnnzoo {

static_assert(kAvx512Size.lanes == 16, "the function names state 16 output channels per block");

void direct_tasks_ocb16_avx512(void* context, int64_t begin, int64_t end, int worker) {
  run_direct_tasks<kAvx512Size.lanes, kAvx512Size.max_tile>(*static_cast<const KernelPlan*>(context), begin, end, worker);
}

void winograd_tasks_ocb16_avx512(void* context, int64_t begin, int64_t end, int worker) {
  run_winograd_tasks<kAvx512Size.lanes, kAvx512Size.max_tile>(*static_cast<const KernelPlan*>(context), begin, end, worker);
}

}  // namespace fcnnzoo
