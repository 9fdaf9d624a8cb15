// The kernel variants of the fused forward and the table that chooses among
// them. Every variant computes exactly max_pool2d(relu(conv2d(x))) on the
// tensors described by a validated ConvReluPoolShape.
#pragma once

#include <string>
#include <vector>

#include "conv_relu_pool.h"

namespace fcnnzoo {

struct IsaFunctions;

using ConvReluPoolForward = void (*)(const ConvReluPoolShape& shape, const ConvReluPoolSizes& sizes,
                                     const ConvReluPoolTensors& tensors, int thread_count);
using ConvReluPoolShapeTest = bool (*)(const ConvReluPoolShape& shape, const ConvReluPoolSizes& sizes);

struct ConvReluPoolKernel {
  // The name states the algorithm, the tile and the instruction set:
  // "direct_oc16_w14_avx512" computes tiles of up to 14 outputs of a row
  // (w14) for 16 output channels at once (oc16) with AVX-512, and
  // "winograd_f2x3_oc16_w14_avx512" multiplies up to 14 Winograd
  // F(2x2, 3x3) tiles at once for 16 output channels.
  const char* name;
  // Whether the CPU running this process can execute the variant.
  bool (*is_supported)();
  // Whether the variant can compute a shape; null for every shape.
  ConvReluPoolShapeTest supports;
  // Whether the default choice should take the variant for a shape it
  // supports; null for every such shape.
  ConvReluPoolShapeTest preferred;
  // Short description of the shapes the variant supports, for error messages.
  const char* shape_limits;
  ConvReluPoolForward forward;
  // The instruction set's functions, which also pack its weights, and
  // whether the variant is a Winograd one; null for the reference.
  const IsaFunctions* isa;
  bool winograd;
};

// Naive loops over every output element; slow, kept as a second opinion.
void conv_relu_pool_reference(const ConvReluPoolShape& shape, const ConvReluPoolSizes& sizes,
                              const ConvReluPoolTensors& tensors, int thread_count);

// Direct convolution vectorized over blocks of 16, 8 or 4 output channels.
// Every shape is supported that direct_supports accepts: no groups,
// depthwise, or a multiple of kGroupChannelMultiple output channels per
// group, so that each block of output channels lies inside one group.
constexpr int64_t kGroupChannelMultiple = 16;
bool direct_supports(const ConvReluPoolShape& shape, const ConvReluPoolSizes& sizes);
void conv_relu_pool_direct_oc16_w14_avx512(const ConvReluPoolShape& shape, const ConvReluPoolSizes& sizes,
                                           const ConvReluPoolTensors& tensors, int thread_count);
void conv_relu_pool_direct_oc8_w12_avx2(const ConvReluPoolShape& shape, const ConvReluPoolSizes& sizes,
                                        const ConvReluPoolTensors& tensors, int thread_count);
void conv_relu_pool_direct_oc4_w12_generic(const ConvReluPoolShape& shape, const ConvReluPoolSizes& sizes,
                                           const ConvReluPoolTensors& tensors, int thread_count);

// Winograd F(2x2, 3x3) for 3x3 kernels with stride 1, no dilation and no
// groups, followed by a 2x2 max pool with stride 2 and no padding whose
// windows all lie inside the convolution output.
bool winograd_supports(const ConvReluPoolShape& shape, const ConvReluPoolSizes& sizes);
// True where the Winograd kernel is expected to beat the direct one.
bool winograd_preferred(const ConvReluPoolShape& shape, const ConvReluPoolSizes& sizes);
void conv_relu_pool_winograd_f2x3_oc16_w14_avx512(const ConvReluPoolShape& shape, const ConvReluPoolSizes& sizes,
                                                  const ConvReluPoolTensors& tensors, int thread_count);
void conv_relu_pool_winograd_f2x3_oc8_w12_avx2(const ConvReluPoolShape& shape, const ConvReluPoolSizes& sizes,
                                               const ConvReluPoolTensors& tensors, int thread_count);
void conv_relu_pool_winograd_f2x3_oc4_w12_generic(const ConvReluPoolShape& shape, const ConvReluPoolSizes& sizes,
                                                  const ConvReluPoolTensors& tensors, int thread_count);

// The gradient of the convolution output, (batch, out_channels,
// conv_height, conv_width), from the gradient of the pooled output and the
// output and indices of a forward call that wrote indices. Each pooled
// value whose output is positive or NaN sends its gradient to the
// convolution output its index names; every other one gets zero.
void conv_relu_pool_conv_gradient(const ConvReluPoolShape& shape, const ConvReluPoolSizes& sizes,
                                  const float* grad_output, const float* output, const uint8_t* indices,
                                  float* grad_conv, int thread_count);

// Raw pointers of one fused backward call. grad_input, grad_weight and
// grad_bias may each be null when that gradient is not wanted.
struct ConvReluPoolBackwardTensors {
  const float* grad_output = nullptr;
  const float* output = nullptr;
  const uint8_t* indices = nullptr;
  const float* input = nullptr;
  const float* weight = nullptr;
  float* grad_input = nullptr;
  float* grad_weight = nullptr;
  float* grad_bias = nullptr;
};

// The gradients of the input, weight and bias from the gradient of the
// pooled output and the output and indices of a forward call that wrote
// indices, equal to conv_relu_pool_conv_gradient followed by a convolution
// backward, but computed from the winners only. Returns false, with the
// gradients unspecified, when the input or the weight holds NaN or
// infinity: the dense computation spreads their NaN where this one would
// not, so callers use that pair for such values instead.
bool conv_relu_pool_backward(const ConvReluPoolShape& shape, const ConvReluPoolSizes& sizes,
                             const ConvReluPoolBackwardTensors& tensors, int thread_count);

// Names of the variants this CPU supports, in the order the default choice
// tries them. FCNNZOO_CPU_CAPABILITY (avx512, avx2 or default) drops the
// variants above that level, and an unknown value or a level the CPU lacks
// makes this and find_kernel throw std::invalid_argument.
std::vector<std::string> supported_kernel_names();

// The instruction-set level that FCNNZOO_CPU_CAPABILITY allows on this CPU:
// 2 for avx512 (the default when unset), 1 for avx2, 0 for default. Throws
// std::invalid_argument like supported_kernel_names.
int cpu_capability_level();

// The variant called name, or, when name is empty, the first variant in
// table order that this CPU supports and that supports and prefers the shape.
// Throws std::invalid_argument if the name is unknown, this CPU lacks the
// instructions it needs or it does not support the shape.
const ConvReluPoolKernel& find_kernel(const std::string& name, const ConvReluPoolShape& shape,
                                      const ConvReluPoolSizes& sizes);

}  // namespace fcnnzoo
