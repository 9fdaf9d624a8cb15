// The direct kernel's per-call plan, shared between its driver
// (conv_relu_pool_direct.cpp) and its task functions, which are compiled
// once per instruction set (conv_relu_pool_direct_<isa>.cpp).
#pragma once

#include <cstdint>

#include "conv_relu_pool.h"

namespace fcnnzoo {

// Everything a task needs, fixed before the parallel phase. Tasks only write
// to their worker's scratch memory and cached_image slot and to their own
// part of the output.
struct DirectPlan {
  ConvReluPoolShape shape;
  ConvReluPoolSizes sizes;
  const float* input = nullptr;
  float* output = nullptr;

  // Weights as [block][in_channel][kh][kw][lane] and bias as [block][lane],
  // with lanes output channels per block and zeros past out_channels.
  const float* packed_weight = nullptr;
  const float* packed_bias = nullptr;
  int64_t block_count = 0;

  // A task is (image, block, group of rows_per_task pooled rows), numbered
  // with the row group varying fastest, then the block, then the image.
  int64_t rows_per_task = 0;
  int64_t row_group_count = 0;
  // Each convolution row is computed in tile_count tiles of nearly equal width.
  int64_t tile_count = 0;

  // The image the convolution reads: the input itself when there is no
  // padding, else a zero-padded copy in the worker's scratch memory.
  bool copies_padded_image = false;
  int64_t source_height = 0;
  int64_t source_width = 0;

  // Per-worker scratch, scratch_stride floats each: the padded image, then
  // the row maxima, then the pooled positions of one task. Every region is
  // 64-byte aligned.
  float* scratch = nullptr;
  int64_t scratch_stride = 0;
  int64_t image_scratch_floats = 0;
  int64_t row_scratch_floats = 0;
  // Per worker: which image its padded copy holds, or -1.
  int64_t* cached_image = nullptr;
};

// Output channels per block and maximum tile width of each variant. A tile
// keeps max_tile accumulators plus one weight vector in registers.
struct DirectVariantSize {
  int lanes;
  int max_tile;
};
// 14 + 1 of the 32 zmm registers.
constexpr DirectVariantSize kDirectAvx512Size{16, 14};
// 12 + 1 of the 16 ymm registers.
constexpr DirectVariantSize kDirectAvx2Size{8, 12};
// 12 + 1 of the 16 SSE registers (32 on NEON).
constexpr DirectVariantSize kDirectGenericSize{4, 12};

// Task functions with the TaskRangeFunction signature; context is a
// const DirectPlan*. The AVX2 and AVX-512 ones exist on x86 only and may be
// called only when the CPU supports those instructions.
void direct_tasks_ocb16_avx512(void* context, int64_t begin, int64_t end, int worker);
void direct_tasks_ocb8_avx2(void* context, int64_t begin, int64_t end, int worker);
void direct_tasks_ocb4_generic(void* context, int64_t begin, int64_t end, int worker);

}  // namespace fcnnzoo
