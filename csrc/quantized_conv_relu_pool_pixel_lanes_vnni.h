// The AVX-512 VNNI pixel-lane kernel for layers whose kernel rows hold at
// most four taps (kernel_width * in_channels <= 4), such as a 3x3
// convolution on one input channel. The channel-lane kernel of
// quantized_conv_relu_pool_body.h spends only kernel_height vpdpbusd per
// pixel there, so its packing, pooling buffers and NCHW transpose dominate.
//
// Here the 16 int32 lanes of a vector are 16 pooled columns of one output
// channel instead. Phase j of a pooled row is the vector of convolution
// columns q * pool_stride_width + j, so the horizontal pool is a lane-wise
// maximum over the phases, the vertical pool one over the window's
// convolution rows, and the requantized vector is a run of 16 bytes of the
// NCHW output. Each lane's four input bytes (one kernel row's taps) come
// from one gather per packed input row and phase, made once per task. The
// packed weights then have one group of four taps per kernel row.
//
// Included by quantized_conv_relu_pool_isa_avx512_vnni.cpp only, after its
// Avx512VnniIsa traits; it needs AVX-512F, BW, VL and VNNI.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>

#include "quantized_conv_relu_pool_body.h"

namespace fcnnzoo {
namespace {

constexpr int kPixelLanes = 16;

// Vectors of 16 pooled columns that cover one pooled row.
inline int64_t pixel_lane_segments(const ConvReluPoolSizes& sizes) {
  return (sizes.pooled_width + kPixelLanes - 1) / kPixelLanes;
}

// Gathers the input words of packed rows [0, row_count) into expanded,
// [row][segment][phase] vectors. Lane q of (segment, phase j) holds the taps
// of one kernel row for convolution column x = (16 * segment + q) *
// pool_stride_width + j: the four bytes from row[x * stride_width *
// in_channels]. Taps past kernel_width * in_channels meet zero weights.
// Lanes outside the pooled row or past conv_width hold zero.
inline void gather_pixel_lane_words(const QuantizedTaskPlan& plan, const uint8_t* rows, int64_t row_count,
                                    __m512i* expanded) {
  const ConvReluPoolShape& s = plan.shape;
  const ConvReluPoolSizes& z = plan.sizes;
  const int64_t segments = pixel_lane_segments(z);
  const int64_t phases = s.pool_kernel_width;
  const int64_t column_bytes = s.stride_width * s.in_channels;
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i pooled_width = _mm512_set1_epi32(static_cast<int>(z.pooled_width));
  const __m512i conv_width = _mm512_set1_epi32(static_cast<int>(z.conv_width));

  for (int64_t segment = 0; segment < segments; ++segment) {
    const __m512i pooled_column = _mm512_add_epi32(lane, _mm512_set1_epi32(static_cast<int>(segment * kPixelLanes)));
    const __mmask16 inside_row = _mm512_cmplt_epi32_mask(pooled_column, pooled_width);
    for (int64_t phase = 0; phase < phases; ++phase) {
      const __m512i column = _mm512_add_epi32(
          _mm512_mullo_epi32(pooled_column, _mm512_set1_epi32(static_cast<int>(s.pool_stride_width))),
          _mm512_set1_epi32(static_cast<int>(phase)));
      const __mmask16 valid = inside_row & _mm512_cmplt_epi32_mask(column, conv_width);
      const __m512i offset = _mm512_mullo_epi32(column, _mm512_set1_epi32(static_cast<int>(column_bytes)));
      for (int64_t row = 0; row < row_count; ++row) {
        const uint8_t* base = rows + row * plan.row_elements;
        expanded[(row * segments + segment) * phases + phase] =
            _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), valid, offset, base, 1);
      }
    }
  }
}

inline int32_t load_weight_word(const int8_t* address) {
  int32_t word;
  std::memcpy(&word, address, sizeof word);
  return word;
}

// The operands of one pooled row segment: 16 pooled columns of one pooled row.
struct PixelLaneWindow {
  // The gathered vector of the window's first convolution row, kernel row 0 and phase 0.
  const __m512i* inputs;
  // Vectors between neighbouring input rows and between neighbouring convolution rows.
  int64_t input_row_step;
  int64_t conv_row_step;
  int64_t conv_rows;
  int64_t phases;
  int64_t kernel_rows;
  // Per phase, the lanes whose convolution column exists. Only ceil_mode
  // windows at the right edge lack some.
  __mmask16 valid[kMaxPixelLanePhases];
};

// Output channels computed together: each gathered input vector that is
// loaded feeds one vpdpbusd per channel, and the weight, accumulator and
// maximum registers of 4 channels with a 5-row kernel still fit in 32.
constexpr int kPixelLaneChannels = 4;

// Stores into pooled the maxima over the window of the accumulators of
// kPixelLaneChannels output channels, and over floor (0 for the ReLU,
// else INT32_MIN). weight points at the first channel's word of kernel row
// 0; the channels' words are 4 bytes apart and kernel rows weight_step
// bytes apart. kKernelRows is the kernel height, or 0 to read it from
// window.kernel_rows.
template <int kKernelRows>
inline void pool_pixel_lane_channels(const PixelLaneWindow& window, const int8_t* weight, int64_t weight_step,
                                     const int32_t* bias, __m512i floor, __m512i* pooled) {
  constexpr int kWeightRows = kKernelRows > 0 ? kKernelRows : 1;
  __m512i weights[kWeightRows][kPixelLaneChannels];
  if constexpr (kKernelRows > 0) {
    for (int kh = 0; kh < kKernelRows; ++kh) {
      for (int c = 0; c < kPixelLaneChannels; ++c) {
        weights[kh][c] = _mm512_set1_epi32(load_weight_word(weight + kh * weight_step + 4 * c));
      }
    }
  }
  for (int c = 0; c < kPixelLaneChannels; ++c) {
    pooled[c] = floor;
  }

  for (int64_t conv_row = 0; conv_row < window.conv_rows; ++conv_row) {
    for (int64_t phase = 0; phase < window.phases; ++phase) {
      const __m512i* inputs = window.inputs + conv_row * window.conv_row_step + phase;
      __m512i accumulators[kPixelLaneChannels];
      for (int c = 0; c < kPixelLaneChannels; ++c) {
        accumulators[c] = _mm512_set1_epi32(bias[c]);
      }
      if constexpr (kKernelRows > 0) {
        for (int kh = 0; kh < kKernelRows; ++kh) {
          const __m512i input = _mm512_load_si512(inputs + kh * window.input_row_step);
          for (int c = 0; c < kPixelLaneChannels; ++c) {
            accumulators[c] = _mm512_dpbusd_epi32(accumulators[c], input, weights[kh][c]);
          }
        }
      } else {
        for (int64_t kh = 0; kh < window.kernel_rows; ++kh) {
          const __m512i input = _mm512_load_si512(inputs + kh * window.input_row_step);
          for (int c = 0; c < kPixelLaneChannels; ++c) {
            const __m512i word = _mm512_set1_epi32(load_weight_word(weight + kh * weight_step + 4 * c));
            accumulators[c] = _mm512_dpbusd_epi32(accumulators[c], input, word);
          }
        }
      }
      const __mmask16 valid = window.valid[phase];
      for (int c = 0; c < kPixelLaneChannels; ++c) {
        pooled[c] = _mm512_mask_max_epi32(pooled[c], valid, pooled[c], accumulators[c]);
      }
    }
  }
}

// Computes and stores every output channel of one pooled row segment;
// mask holds the lanes inside the pooled row, and offset is the NCHW index
// of channel 0's first value. The requantization matches Avx512VnniIsa::requantize.
template <int kKernelRows>
inline void run_pixel_lane_segment(const QuantizedTaskPlan& plan, const PixelLaneWindow& window, int64_t offset,
                                   __mmask16 mask) {
  const QuantizedParameters& parameters = plan.parameters;
  const QuantizedPackedWeights& packed = *plan.packed;
  const int64_t plane = plan.sizes.pooled_height * plan.sizes.pooled_width;
  const int64_t blocks = packed.padded_channels / kPixelLanes;
  // The packed weights are [chunk of kMaxBlocks blocks][kh][group][block][lane][4 taps], with one group.
  const int64_t block_bytes = plan.shape.kernel_height * kPixelLanes * 4;
  const auto* weights = static_cast<const int8_t*>(packed.packed.get());
  const __m512i floor = _mm512_set1_epi32(parameters.relu ? 0 : std::numeric_limits<int32_t>::min());
  const __m512 shift = _mm512_set1_ps(static_cast<float>(parameters.output_zero_point));
  const __m512 scale = _mm512_set1_ps(parameters.output_scale);
  const __m512 low = _mm512_setzero_ps();
  const __m512 high = _mm512_set1_ps(255.0F);

  // padded_channels is a multiple of 16, and the padding channels have
  // zero weights, biases and multipliers; they are computed but not stored.
  for (int64_t first_channel = 0; first_channel < plan.shape.out_channels; first_channel += kPixelLaneChannels) {
    const int64_t block = first_channel / kPixelLanes;
    const int64_t chunk_start = block / Avx512VnniIsa::kMaxBlocks * Avx512VnniIsa::kMaxBlocks;
    const int64_t chunk_blocks = std::min<int64_t>(Avx512VnniIsa::kMaxBlocks, blocks - chunk_start);
    const int64_t weight_step = chunk_blocks * kPixelLanes * 4;
    const int8_t* weight =
        weights + chunk_start * block_bytes + ((block - chunk_start) * kPixelLanes + first_channel % kPixelLanes) * 4;
    __m512i pooled[kPixelLaneChannels];
    pool_pixel_lane_channels<kKernelRows>(window, weight, weight_step, plan.folded_bias + first_channel, floor,
                                          pooled);

    const int channels = static_cast<int>(std::min<int64_t>(kPixelLaneChannels, plan.shape.out_channels - first_channel));
    for (int c = 0; c < channels; ++c) {
      const int64_t o = first_channel + c;
      const __m512 product = _mm512_mul_ps(_mm512_cvtepi32_ps(pooled[c]), _mm512_set1_ps(plan.multiplier[o]));
      __m512 q = _mm512_add_ps(_mm512_roundscale_ps(product, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), shift);
      q = _mm512_min_ps(_mm512_max_ps(q, low), high);
      if (parameters.float_output) {
        _mm512_mask_storeu_ps(plan.tensors.output_float + offset + o * plane, mask,
                              _mm512_mul_ps(_mm512_sub_ps(q, shift), scale));
      } else {
        store_bytes_masked(plan.tensors.output_uint8 + offset + o * plane, mask, _mm512_cvtps_epi32(q));
      }
    }
  }
}

// Computes pooled rows [first_pooled, end_pooled) of one image.
inline void run_pixel_lane_rows(const QuantizedTaskPlan& plan, int64_t image, int64_t first_pooled,
                                int64_t end_pooled, unsigned char* scratch) {
  const ConvReluPoolShape& s = plan.shape;
  const ConvReluPoolSizes& z = plan.sizes;
  auto* rows = reinterpret_cast<uint8_t*>(scratch + plan.input_offset);
  auto* staging = reinterpret_cast<uint8_t*>(scratch + plan.staging_offset);
  auto* expanded = reinterpret_cast<__m512i*>(scratch + plan.expanded_offset);

  const int64_t first_conv = first_pooled * s.pool_stride_height;
  const int64_t end_conv = std::min((end_pooled - 1) * s.pool_stride_height + s.pool_kernel_height, z.conv_height);
  const int64_t first_row = first_conv * s.stride_height;
  const int64_t end_row = (end_conv - 1) * s.stride_height + s.kernel_height;
  pack_input_rows<Avx512VnniIsa>(plan, image, first_row, end_row, rows, staging);
  gather_pixel_lane_words(plan, rows, end_row - first_row, expanded);

  const int64_t segments = pixel_lane_segments(z);
  const int64_t phases = s.pool_kernel_width;
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i pooled_width = _mm512_set1_epi32(static_cast<int>(z.pooled_width));
  const __m512i conv_width = _mm512_set1_epi32(static_cast<int>(z.conv_width));
  const __m512i pool_stride = _mm512_set1_epi32(static_cast<int>(s.pool_stride_width));

  PixelLaneWindow window;
  window.input_row_step = segments * phases;
  window.conv_row_step = s.stride_height * window.input_row_step;
  window.phases = phases;
  window.kernel_rows = s.kernel_height;
  for (int64_t y = first_pooled; y < end_pooled; ++y) {
    const int64_t window_first = y * s.pool_stride_height;
    window.conv_rows = std::min(window_first + s.pool_kernel_height, z.conv_height) - window_first;
    for (int64_t segment = 0; segment < segments; ++segment) {
      const __m512i pooled_column = _mm512_add_epi32(lane, _mm512_set1_epi32(static_cast<int>(segment * kPixelLanes)));
      const __mmask16 mask = _mm512_cmplt_epi32_mask(pooled_column, pooled_width);
      for (int64_t phase = 0; phase < phases; ++phase) {
        const __m512i column =
            _mm512_add_epi32(_mm512_mullo_epi32(pooled_column, pool_stride), _mm512_set1_epi32(static_cast<int>(phase)));
        window.valid[phase] = _mm512_cmplt_epi32_mask(column, conv_width);
      }
      const int64_t input_row = window_first * s.stride_height - first_row;
      window.inputs = expanded + input_row * window.input_row_step + segment * phases;
      const int64_t offset =
          image * s.out_channels * z.pooled_height * z.pooled_width + y * z.pooled_width + segment * kPixelLanes;
      switch (s.kernel_height) {
        case 1:
          run_pixel_lane_segment<1>(plan, window, offset, mask);
          break;
        case 2:
          run_pixel_lane_segment<2>(plan, window, offset, mask);
          break;
        case 3:
          run_pixel_lane_segment<3>(plan, window, offset, mask);
          break;
        case 4:
          run_pixel_lane_segment<4>(plan, window, offset, mask);
          break;
        case 5:
          run_pixel_lane_segment<5>(plan, window, offset, mask);
          break;
        default:
          run_pixel_lane_segment<0>(plan, window, offset, mask);
          break;
      }
    }
  }
}

void run_pixel_lane_tasks(void* context, int64_t begin, int64_t end, int worker) {
  const auto& plan = *static_cast<const QuantizedTaskPlan*>(context);
  unsigned char* scratch = plan.scratch + worker * plan.scratch_stride;
  for (int64_t task = begin; task < end; ++task) {
    const int64_t image = task / plan.row_group_count;
    const int64_t first_pooled = (task % plan.row_group_count) * plan.rows_per_task;
    const int64_t end_pooled = std::min(first_pooled + plan.rows_per_task, plan.sizes.pooled_height);
    run_pixel_lane_rows(plan, image, first_pooled, end_pooled, scratch);
  }
}

}  // namespace
}  // namespace fcnnzoo
