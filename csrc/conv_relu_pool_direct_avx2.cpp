// The direct kernel's task function for AVX2 and FMA.
// CMakeLists.txt compiles this file with the matching instruction-set flags.
#include "conv_relu_pool_direct_body.h"

namespace fcnnzoo {

void direct_tasks_ocb8_avx2(void* context, int64_t begin, int64_t end, int worker) {
  static_assert(kDirectAvx2Size.lanes == 8, "the variant name states 8 lanes");
  run_direct_tasks<kDirectAvx2Size.lanes, kDirectAvx2Size.max_tile>(*static_cast<const DirectPlan*>(context), begin, end, worker);
}

}  // namespace fcnnzoo
