// The per-call plan of the fast kernels, shared between their driver
// (conv_relu_pool_driver.cpp) and their task functions, which are compiled
// once per instruction set (conv_relu_pool_isa_<isa>.cpp).
#pragma once

#include <cstdint>

#include "conv_relu_pool.h"

namespace fcnnzoo {

// Everything a task needs, fixed before the parallel phase. Tasks only write
// to their worker's scratch memory and cache slots and to their own part of
// the output.
struct KernelPlan {
  ConvReluPoolShape shape;
  ConvReluPoolSizes sizes;
  const float* input = nullptr;
  float* output = nullptr;
  // When set, the position of each pooled value inside its window, as in
  // ConvReluPoolTensors::indices.
  uint8_t* indices = nullptr;

  // Weights as [block][in_channel][kh][kw][lane] and bias as [block][lane],
  // with lanes output channels per block and zeros past out_channels.
  const float* packed_weight = nullptr;
  const float* packed_bias = nullptr;
  int64_t block_count = 0;

  // A task covers one image, one channel block and rows_per_task pooled rows
  // (one row group). The direct kernel numbers tasks with the row group
  // varying fastest, the Winograd kernel with the block varying fastest.
  int64_t rows_per_task = 0;
  int64_t row_group_count = 0;

  // The image the convolution reads, source_height x source_width. The
  // direct kernel reads the input itself when there is no padding, and a
  // zero-padded NCHW copy in the worker's scratch memory otherwise. The
  // Winograd kernel always reads a zero-padded channels-last copy with
  // padded_channels channels.
  bool copies_padded_image = false;
  int64_t source_height = 0;
  int64_t source_width = 0;
  int64_t padded_channels = 0;

  // Winograd kernel only: the transformed weights U = G g G^T as
  // [block][frequency][padded channel][lane], 16 frequencies.
  const float* winograd_weight = nullptr;

  // Per-worker scratch memory of scratch_stride floats. It is split, in this
  // order, into the padded image, the Winograd input transforms, the Winograd
  // products, the row maxima and the pooled positions of one task, and, when
  // indices are written, the winning rows of the row maxima and the winning
  // positions of the pooled values. Each region is 64-byte aligned, and
  // unused regions have size zero.
  float* scratch = nullptr;
  int64_t scratch_stride = 0;
  int64_t image_scratch_floats = 0;
  int64_t transform_scratch_floats = 0;
  int64_t product_scratch_floats = 0;
  int64_t row_scratch_floats = 0;
  int64_t pooled_scratch_floats = 0;

  // Per worker: the image in its padded copy, and the image * row_group_count
  // + row group of its Winograd input transforms, or -1 when empty.
  int64_t* cached_image = nullptr;
  int64_t* cached_transform = nullptr;
};

// Everything a backward task needs, fixed before the parallel phase; see
// conv_relu_pool_backward_body.h.
struct BackwardPlan {
  ConvReluPoolShape shape;
  ConvReluPoolSizes sizes;
  const float* grad_output = nullptr;
  const float* output = nullptr;
  const uint8_t* indices = nullptr;
  const float* input = nullptr;
  // [out_channel][kh][kw][in_channel] in the sparse layout, the weight's own
  // layout in the dense one.
  const float* weight = nullptr;
  // The NCHW input gradient, or null when it is not wanted.
  float* grad_input = nullptr;
  bool need_weight = false;
  bool sparse = false;
  // Per task: set to 1 when an input image holds NaN or infinity.
  uint8_t* non_finite = nullptr;
  // Tasks of the call, each with its own scratch slot; see run_backward_tasks.
  int64_t task_count = 1;
  // The row and column inside the pooling window of each index.
  uint8_t window_row[kMaxIndexedWindow] = {};
  uint8_t window_column[kMaxIndexedWindow] = {};

  // The padded image: padded_height x padded_width positions with the input
  // at (padding_height, padding_width) and zeros around it.
  int64_t padded_height = 0;
  int64_t padded_width = 0;
  // Dense layout: floats per row of the gradient plane, a whole number of
  // vectors when the stride is 1.
  int64_t plane_width = 0;

  // Per-task scratch memory of scratch_stride floats: the weight and bias
  // accumulators (weight_sum_floats), the padded image and its gradient
  // (image_floats each), and then the dense layout's gradient plane or the
  // sparse layout's lists (SparseScratch in conv_relu_pool_backward_body.h):
  // the winners of one plane (winner_floats each for int32 offsets and
  // gradients), the winners of one image (entry_floats each for positions,
  // channels, gradients, sorted channels and sorted gradients) and the
  // start of each convolution position in the sorted lists (position_floats).
  float* scratch = nullptr;
  int64_t scratch_stride = 0;
  int64_t weight_sum_floats = 0;
  int64_t image_floats = 0;
  int64_t winner_floats = 0;
  int64_t entry_floats = 0;
  int64_t position_floats = 0;
};

// The code of the fast kernels for one instruction set, defined in
// conv_relu_pool_isa_<isa>.cpp. The AVX2 and AVX-512 tables exist on x86
// only, and their functions may run only on CPUs with those instructions.
struct IsaFunctions {
  // Output channels per block.
  int lanes;
  // Packs weight (out_channels, in_channels, kh, kw) into
  // [block][in_channel][kh][kw][lane] and bias (or zeros when bias is null)
  // into [block][lane], with zeros for the lanes past out_channels.
  void (*pack_weights)(const ConvReluPoolShape& shape, const float* weight, const float* bias, float* packed_weight,
                       float* packed_bias);
  // Computes the Winograd weights U = G g G^T from 3x3 weights packed by
  // pack_weights, as [block][frequency][padded channel][lane], with zeros for
  // the channels from in_channels to padded_channels.
  void (*transform_weights)(const ConvReluPoolShape& shape, const float* packed_weight, int64_t padded_channels,
                            float* transformed);
  // Task functions with the TaskRangeFunction signature of thread_pool.h;
  // context is a const KernelPlan*. The _indexed ones also write
  // KernelPlan::indices.
  void (*direct_tasks)(void* context, int64_t begin, int64_t end, int worker);
  void (*winograd_tasks)(void* context, int64_t begin, int64_t end, int worker);
  void (*direct_tasks_indexed)(void* context, int64_t begin, int64_t end, int worker);
  void (*winograd_tasks_indexed)(void* context, int64_t begin, int64_t end, int worker);
  // Backward tasks; context is a const BackwardPlan*.
  void (*backward_tasks)(void* context, int64_t begin, int64_t end, int worker);
};

// The functions of the widest instruction set that this CPU has and
// FCNNZOO_CPU_CAPABILITY allows. Throws std::invalid_argument like
// supported_kernel_names.
const IsaFunctions& widest_isa_functions();

extern const IsaFunctions kAvx512Functions;
extern const IsaFunctions kAvx2Functions;
extern const IsaFunctions kGenericFunctions;

}  // namespace fcnnzoo
