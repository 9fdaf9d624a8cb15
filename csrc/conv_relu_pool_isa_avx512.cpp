// The fast kernels for AVX-512F (with FMA).
// CMakeLists.txt compiles this file with the matching instruction-set flags.
#include "conv_relu_pool_backward_body.h"
#include "conv_relu_pool_direct_body.h"
#include "conv_relu_pool_plan.h"
#include "conv_relu_pool_winograd_body.h"

namespace fcnnzoo {
namespace {

constexpr int kLanes = 16;
// 14 accumulators and the weight vector use 15 of the 32 zmm registers.
constexpr int kMaxTile = 14;

void pack_weights_oc16_avx512(const ConvReluPoolShape& shape, const float* weight, const float* bias,
                              float* packed_weight, float* packed_bias) {
  pack_weights<kLanes>(shape, weight, bias, packed_weight, packed_bias);
}

void transform_weights_oc16_avx512(const ConvReluPoolShape& shape, const float* packed_weight,
                                   int64_t padded_channels, float* transformed) {
  transform_weights<kLanes>(shape, packed_weight, padded_channels, transformed);
}

void direct_tasks_oc16_avx512(void* context, int64_t begin, int64_t end, int worker) {
  run_direct_tasks<kLanes, kMaxTile, false>(*static_cast<const KernelPlan*>(context), begin, end, worker);
}

void winograd_tasks_oc16_avx512(void* context, int64_t begin, int64_t end, int worker) {
  run_winograd_tasks<kLanes, kMaxTile, false>(*static_cast<const KernelPlan*>(context), begin, end, worker);
}

void direct_tasks_indexed_oc16_avx512(void* context, int64_t begin, int64_t end, int worker) {
  run_direct_tasks<kLanes, kMaxTile, true>(*static_cast<const KernelPlan*>(context), begin, end, worker);
}

void winograd_tasks_indexed_oc16_avx512(void* context, int64_t begin, int64_t end, int worker) {
  run_winograd_tasks<kLanes, kMaxTile, true>(*static_cast<const KernelPlan*>(context), begin, end, worker);
}

void backward_tasks_oc16_avx512(void* context, int64_t begin, int64_t end, int worker) {
  run_backward_tasks<kLanes>(*static_cast<const BackwardPlan*>(context), begin, end, worker);
}

}  // namespace

const IsaFunctions kAvx512Functions{kLanes,
                                   pack_weights_oc16_avx512,
                                   transform_weights_oc16_avx512,
                                   direct_tasks_oc16_avx512,
                                   winograd_tasks_oc16_avx512,
                                   direct_tasks_indexed_oc16_avx512,
                                   winograd_tasks_indexed_oc16_avx512,
                                   backward_tasks_oc16_avx512};

}  // namespace fcnnzoo
