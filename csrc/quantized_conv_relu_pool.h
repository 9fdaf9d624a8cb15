// The static int8 conv2d -> max_pool2d -> ReLU -> requantize block: uint8
// activations, int8 weights and int32 accumulators. The arithmetic is the
// one fcnnzoo/quantized_ops.py defines and checks in float64:
//
//   xq   = clamp(round_half_even(float32(x) * inverse_input_scale) + zx, 0, 255), NaN -> zx
//   acc  = bias[o] + sum over (c, kh, kw) of (xq - zx) * w[o, c, kh, kw]
//   pool = max of acc over each window, then max(pool, 0) when relu is set
//   q    = clamp(round_half_even(float32(pool) * multiplier[o]) + zy, 0, 255)
//   y    = q as uint8, or (q - zy) * output_scale in float32
//
// Padding contains zx, so padded taps add nothing. The kernels fold zx into
// the bias (bias - zx * sum(w)) and multiply the raw xq, so every partial
// sum must fit in int32; accumulator_fits_int32 checks that up front.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "conv_relu_pool.h"

namespace fcnnzoo {

struct QuantizedIsaFunctions;

// Weights packed once for one instruction set, with the per-channel sums that
// the bias folding and the int32 bound need. Immutable once made, so calls
// on several threads may share it.
struct QuantizedPackedWeights {
  // The convolution and pooling arguments; the batch and input sizes are
  // placeholders that each call replaces.
  ConvReluPoolShape geometry;
  const QuantizedIsaFunctions* isa = nullptr;
  // Input elements of one kernel row, kernel_width * in_channels rounded up
  // to the group size of the instruction set.
  int64_t row_elements = 0;
  // Output channels rounded up to whole vectors.
  int64_t padded_channels = 0;
  // sum(w[o]) and sum(|w[o]|) over every tap of channel o.
  std::vector<int64_t> weight_sum;
  std::vector<int64_t> weight_abs_sum;
  // Layout in quantized_conv_relu_pool_body.h (pack_quantized_weights).
  std::shared_ptr<void> packed;
};

// The per-call scalars of the arithmetic above.
struct QuantizedParameters {
  // Kept in double: the input is quantized with float32(1 / input_scale)
  // computed in double, and the output scale is used as float32(output_scale).
  double input_scale = 1.0;
  int input_zero_point = 0;
  float output_scale = 1.0F;
  int output_zero_point = 0;
  bool relu = true;
  bool float_output = false;
};

// Raw pointers of one call; bias may be null. Exactly one of input_float and
// input_uint8, and one of output_uint8 and output_float, is set.
struct QuantizedTensors {
  const float* input_float = nullptr;
  const uint8_t* input_uint8 = nullptr;
  const int32_t* bias = nullptr;
  const float* multiplier = nullptr;
  uint8_t* output_uint8 = nullptr;
  float* output_float = nullptr;
};

// Packs weight (out_channels, in_channels, kernel_height, kernel_width), int8
// and C-contiguous, for the widest instruction set that this CPU has and
// FCNNZOO_CPU_CAPABILITY allows. geometry supplies out_channels,
// in_channels, the kernel size and the convolution and pooling arguments.
// Throws std::invalid_argument for an invalid geometry or capability value.
std::shared_ptr<const QuantizedPackedWeights> pack_quantized_weights(const ConvReluPoolShape& geometry,
                                                                     const int8_t* weight);

// The name of the kernel that runs packed weights, such as "quantized_direct_vnni_avx512".
std::string quantized_kernel_name(const QuantizedPackedWeights& packed);

// The name of the kernel that a call of shape (from quantized_call_shape)
// runs: the pixel-lane kernel, such as "quantized_pixels16_vnni_avx512",
// for layers with at most four taps per kernel row and enough pooled
// columns, else quantized_kernel_name(packed).
std::string quantized_call_kernel_name(const QuantizedPackedWeights& packed, const ConvReluPoolShape& shape);

// The shape of a call on input (batch, in_channels, in_height, in_width)
// with packed weights, validated. Throws std::invalid_argument naming the
// first invalid size.
ConvReluPoolShape quantized_call_shape(const QuantizedPackedWeights& packed, int64_t batch, int64_t in_channels,
                                       int64_t in_height, int64_t in_width);

// Throws std::invalid_argument unless the scales are finite and positive, the
// zero points lie in [0, 255] and every multiplier is finite and not negative.
void validate_quantized_parameters(const QuantizedParameters& parameters, const float* multiplier,
                                   int64_t out_channels);

// Whether every partial sum of the folded accumulation stays inside int32
// for any input, given the bias (or null) and the input zero point.
bool accumulator_fits_int32(const QuantizedPackedWeights& packed, const int32_t* bias, int input_zero_point);

// Runs the block on a shape from quantized_call_shape with validated
// parameters and accumulator_fits_int32 true, on up to thread_count threads.
void quantized_conv_relu_pool_forward(const QuantizedPackedWeights& packed, const ConvReluPoolShape& shape,
                                      const QuantizedParameters& parameters, const QuantizedTensors& tensors,
                                      int thread_count);

}  // namespace fcnnzoo
