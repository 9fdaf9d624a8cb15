// The task functions of the fast kernels for AVX2 and FMA.
// CMakeLists.txt compiles this file with the matching instruction-set flags.
#include "conv_relu_pool_direct_body.h"
#include "conv_relu_pool_plan.h"
#include "conv_relu_pool_winograd_body.h"

namespace fcnnzoo {

static_assert(kAvx2Size.lanes == 8, "the function names state 8 output channels per block");

void direct_tasks_ocb8_avx2(void* context, int64_t begin, int64_t end, int worker) {
  run_direct_tasks<kAvx2Size.lanes, kAvx2Size.max_tile>(*static_cast<const KernelPlan*>(context), begin, end, worker);
}

void winograd_tasks_ocb8_avx2(void* context, int64_t begin, int64_t end, int worker) {
  run_winograd_tasks<kAvx2Size.lanes, kAvx2Size.max_tile>(*static_cast<const KernelPlan*>(context), begin, end, worker);
}

}  // namespace fcnnzoo
