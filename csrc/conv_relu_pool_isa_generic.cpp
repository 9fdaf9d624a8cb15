// The fast kernels for the base instruction set of the target (SSE2 on x86-64, NEON on aarch64).
// CMakeLists.txt compiles this file with the matching instruction-set flags.
#include "conv_relu_pool_backward_body.h"
#include "conv_relu_pool_direct_body.h"
#include "conv_relu_pool_plan.h"
#include "conv_relu_pool_winograd_body.h"

namespace fcnnzoo {
namespace {

constexpr int kLanes = 4;
// 12 accumulators and the weight vector use 13 of the 16 SSE registers (of 32 on NEON).
constexpr int kMaxTile = 12;

void pack_weights_oc4_generic(const ConvReluPoolShape& shape, const float* weight, const float* bias,
                              float* packed_weight, float* packed_bias) {
  pack_weights<kLanes>(shape, weight, bias, packed_weight, packed_bias);
}

void transform_weights_oc4_generic(const ConvReluPoolShape& shape, const float* packed_weight,
                                   int64_t padded_channels, float* transformed) {
  transform_weights<kLanes>(shape, packed_weight, padded_channels, transformed);
}

void direct_tasks_oc4_generic(void* context, int64_t begin, int64_t end, int worker) {
  run_direct_tasks<kLanes, kMaxTile, false>(*static_cast<const KernelPlan*>(context), begin, end, worker);
}

void winograd_tasks_oc4_generic(void* context, int64_t begin, int64_t end, int worker) {
  run_winograd_tasks<kLanes, kMaxTile, false>(*static_cast<const KernelPlan*>(context), begin, end, worker);
}

void direct_tasks_indexed_oc4_generic(void* context, int64_t begin, int64_t end, int worker) {
  run_direct_tasks<kLanes, kMaxTile, true>(*static_cast<const KernelPlan*>(context), begin, end, worker);
}

void winograd_tasks_indexed_oc4_generic(void* context, int64_t begin, int64_t end, int worker) {
  run_winograd_tasks<kLanes, kMaxTile, true>(*static_cast<const KernelPlan*>(context), begin, end, worker);
}

void backward_tasks_oc4_generic(void* context, int64_t begin, int64_t end, int worker) {
  run_backward_tasks<kLanes>(*static_cast<const BackwardPlan*>(context), begin, end, worker);
}

}  // namespace

const IsaFunctions kGenericFunctions{kLanes,
                                    pack_weights_oc4_generic,
                                    transform_weights_oc4_generic,
                                    direct_tasks_oc4_generic,
                                    winograd_tasks_oc4_generic,
                                    direct_tasks_indexed_oc4_generic,
                                    winograd_tasks_indexed_oc4_generic,
                                    backward_tasks_oc4_generic};

}  // namespace fcnnzoo
