// The per-call plan of the int8 kernels, shared between their driver
// (quantized_conv_relu_pool_driver.cpp) and their task functions, which are
// compiled once per instruction set (quantized_conv_relu_pool_isa_<isa>.cpp).
#pragma once

#include <cstdint>

#include "conv_relu_pool.h"
#include "quantized_conv_relu_pool.h"

namespace fcnnzoo {

// The widest pool window, in columns, that the pixel-lane kernels take.
constexpr int64_t kMaxPixelLanePhases = 16;

// Everything a task needs, fixed before the parallel phase. A task covers
// one image and rows_per_task pooled rows (or, in linear mode,
// images_per_task images), and writes only to its worker's
// scratch memory and its own part of the output.
struct QuantizedTaskPlan {
  ConvReluPoolShape shape;
  ConvReluPoolSizes sizes;
  const QuantizedPackedWeights* packed = nullptr;
  QuantizedParameters parameters;
  QuantizedTensors tensors;
  // float32(1 / input_scale), computed in double as the reference does.
  float inverse_input_scale = 1.0F;
  // bias - input_zero_point * sum(w), and the multipliers, both padded with
  // zeros to packed->padded_channels.
  const int32_t* folded_bias = nullptr;
  const float* multiplier = nullptr;

  // Linear mode: 1x1 inputs, kernels and pools, no padding. A task then
  // covers images_per_task images, which form the pixels of one row.
  bool linear = false;
  int64_t images_per_task = 0;

  // Whether the task function is the instruction set's pixel_lane_tasks.
  bool pixel_lanes = false;

  int64_t rows_per_task = 0;
  int64_t row_group_count = 0;
  // Input rows are packed channels-last with the padding filled in:
  // padded_width pixels of in_channels elements each.
  int64_t padded_width = 0;
  int64_t row_elements = 0;

  // Per-worker scratch of scratch_stride bytes, zeroed once per call so that
  // the few elements a kernel row reads past its last pixel are initialized.
  // Regions start at these byte offsets, each 64-byte aligned.
  unsigned char* scratch = nullptr;
  int64_t scratch_stride = 0;
  int64_t input_offset = 0;
  int64_t staging_offset = 0;
  int64_t row_max_offset = 0;
  int64_t pooled_offset = 0;
  int64_t requantized_offset = 0;
  // The gathered input vectors of the pixel-lane kernel, when it runs.
  int64_t expanded_offset = 0;
};

// The code of the int8 kernels for one instruction set. The AVX2 and
// AVX-512 VNNI tables exist on x86 only, and their functions may run only on
// CPUs with those instructions.
struct QuantizedIsaFunctions {
  const char* kernel_name;
  // int32 output channels per vector.
  int lanes;
  // Input elements that one 32-bit broadcast holds: four uint8 values for
  // VNNI and the portable code, two int16 values for AVX2.
  int group;
  // The most vectors of output channels that one tile computes.
  int max_blocks;
  // Bytes per packed input element and per packed weight.
  int input_bytes;
  int weight_bytes;
  // Writes the weights (out_channels, in_channels, kh, kw) as
  // [chunk][kh][row group][block in chunk][lane][element in group]; see
  // quantized_conv_relu_pool_body.h.
  void (*pack_weights)(const QuantizedPackedWeights& packed, const int8_t* weight, void* destination);
  // Task function with the TaskRangeFunction signature of thread_pool.h;
  // context is a const QuantizedTaskPlan*.
  void (*tasks)(void* context, int64_t begin, int64_t end, int worker);
  // The same for layers whose kernel rows hold at most four taps, with
  // pooled columns in the vector lanes instead of output channels, and its
  // name; both null where the instruction set has no such kernel.
  void (*pixel_lane_tasks)(void* context, int64_t begin, int64_t end, int worker);
  const char* pixel_lane_kernel_name;
};

extern const QuantizedIsaFunctions kQuantizedAvx512VnniFunctions;
extern const QuantizedIsaFunctions kQuantizedAvx2Functions;
extern const QuantizedIsaFunctions kQuantizedGenericFunctions;

}  // namespace fcnnzoo
