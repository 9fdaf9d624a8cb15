// The task functions of the fast kernels for the base instruction set of the target (SSE2 on x86-64, NEON on aarch64).
// CMakeLists.txt compiles this file with the matching instruction-set flags.
#include "conv_relu_pool_direct_body.h"
#include "conv_relu_pool_plan.h"
#include "conv_relu_pool_winograd_body.h"

namespace fcnnzoo {

static_assert(kGenericSize.lanes == 4, "the function names state 4 output channels per block");

void direct_tasks_ocb4_generic(void* context, int64_t begin, int64_t end, int worker) {
  run_direct_tasks<kGenericSize.lanes, kGenericSize.max_tile>(*static_cast<const KernelPlan*>(context), begin, end, worker);
}

void winograd_tasks_ocb4_generic(void* context, int64_t begin, int64_t end, int worker) {
  run_winograd_tasks<kGenericSize.lanes, kGenericSize.max_tile>(*static_cast<const KernelPlan*>(context), begin, end, worker);
}

}  // namespace fcnnzoo
