// The direct kernel's task function for AVX-512F (with FMA).
// CMakeLists.txt compiles this file with the matching instruction-set flags.
#include "conv_relu_pool_direct_body.h"

namespace fcnnzoo {

void direct_tasks_ocb16_avx512(void* context, int64_t begin, int64_t end, int worker) {
  static_assert(kDirectAvx512Size.lanes == 16, "the variant name states 16 lanes");
  run_direct_tasks<kDirectAvx512Size.lanes, kDirectAvx512Size.max_tile>(*static_cast<const DirectPlan*>(context), begin, end, worker);
}

}  // namespace fcnnzoo
