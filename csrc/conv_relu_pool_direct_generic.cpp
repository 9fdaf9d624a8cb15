// The direct kernel's task function for the base instruction set of the target (SSE2 on x86-64, NEON on aarch64).
// CMakeLists.txt compiles this file with the matching instruction-set flags.
#include "conv_relu_pool_direct_body.h"

namespace fcnnzoo {

void direct_tasks_ocb4_generic(void* context, int64_t begin, int64_t end, int worker) {
  static_assert(kDirectGenericSize.lanes == 4, "the variant name states 4 lanes");
  run_direct_tasks<kDirectGenericSize.lanes, kDirectGenericSize.max_tile>(*static_cast<const DirectPlan*>(context), begin, end, worker);
}

}  // namespace fcnnzoo
