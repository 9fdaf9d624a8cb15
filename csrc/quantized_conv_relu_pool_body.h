// The int8 conv -> max-pool -> ReLU -> requantize tasks, written once and
// compiled per instruction set. Each quantized_conv_relu_pool_isa_<isa>.cpp
// includes this file with a traits struct Isa that supplies:
//
//   Input, Weight        packed element types (uint8/int8, or int16/int16)
//   kLanes, kGroup       int32 lanes per vector, input elements per 32-bit broadcast
//   kMaxBlocks           most output-channel vectors per tile
//   max_pixels(blocks)   most output pixels per tile for that many vectors
//   conv_tile<B, P>      the P x B-vector register tile of the convolution
//   quantize             float32 -> packed input elements, step 1 of the arithmetic
//   requantize           int32 pooled values -> uint8 or dequantized float32
//
// Algorithm: the input rows of a task are packed channels-last with the
// padding filled in, so for one output pixel and one kernel row the taps
// (kw, c) are kernel_width * in_channels consecutive elements. The kernel
// reads them kGroup at a time as one 32-bit broadcast and multiplies them
// with kLanes output channels of weights. The row length is rounded up to a
// whole group, and the extra taps read the next pixel's elements against
// zero weights, so any in_channels works without channel padding.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "quantized_conv_relu_pool_plan.h"

namespace fcnnzoo {
namespace {

// Step 1 of the arithmetic for one value; the vector code matches it.
inline int quantize_value(float value, float inverse_scale, float zero_point) {
  float shifted = std::nearbyint(value * inverse_scale) + zero_point;
  if (std::isnan(shifted)) {
    return static_cast<int>(zero_point);
  }
  shifted = std::min(std::max(shifted, 0.0F), 255.0F);
  return static_cast<int>(shifted);
}

// Steps 4 and 5 of the arithmetic for one accumulator: the quantized output q.
inline int requantize_value(int32_t accumulator, float multiplier, float zero_point, bool relu) {
  if (relu) {
    accumulator = std::max(accumulator, 0);
  }
  float shifted = std::nearbyint(static_cast<float>(accumulator) * multiplier) + zero_point;
  shifted = std::min(std::max(shifted, 0.0F), 255.0F);
  return static_cast<int>(shifted);
}

// The operands of one register tile: pixels output pixels of one
// convolution row times blocks vectors of output channels.
struct QuantizedTile {
  // Element (kh = 0, kw = 0, c = 0) of the tile's first pixel.
  const void* input;
  // Elements between neighbouring pixels and between kernel rows.
  int64_t pixel_stride;
  int64_t row_stride;
  int64_t kernel_rows;
  int64_t groups_per_row;
  // The chunk's weights, [kh][row group][block][lane][element in group].
  const void* weight;
  // blocks * lanes folded biases.
  const int32_t* bias;
  // Row p of the tile's output, channels-last, starts at output + p * output_stride.
  int32_t* output;
  int64_t output_stride;
};

template <class Isa, int B, int P>
void run_tile_with_pixels(int pixels, const QuantizedTile& tile) {
  if constexpr (P > 0) {
    if (pixels == P) {
      Isa::template conv_tile<B, P>(tile);
    } else {
      run_tile_with_pixels<Isa, B, P - 1>(pixels, tile);
    }
  }
}

template <class Isa, int B>
void run_tile_with_blocks(int blocks, int pixels, const QuantizedTile& tile) {
  if constexpr (B > 0) {
    if (blocks == B) {
      run_tile_with_pixels<Isa, B, Isa::max_pixels(B)>(pixels, tile);
    } else {
      run_tile_with_blocks<Isa, B - 1>(blocks, pixels, tile);
    }
  }
}

template <class Isa>
void pack_weights_for_isa(const QuantizedPackedWeights& packed, const int8_t* weight, void* destination) {
  using Weight = typename Isa::Weight;
  const ConvReluPoolShape& g = packed.geometry;
  const int64_t taps_per_row = g.kernel_width * g.in_channels;
  const int64_t groups_per_row = packed.row_elements / Isa::kGroup;
  const int64_t blocks = packed.padded_channels / Isa::kLanes;
  const int64_t block_elements = g.kernel_height * groups_per_row * Isa::kLanes * Isa::kGroup;
  auto* out = static_cast<Weight*>(destination);

  for (int64_t chunk_start = 0; chunk_start < blocks; chunk_start += Isa::kMaxBlocks) {
    const int64_t chunk_blocks = std::min<int64_t>(Isa::kMaxBlocks, blocks - chunk_start);
    Weight* chunk = out + chunk_start * block_elements;
    int64_t index = 0;
    for (int64_t kh = 0; kh < g.kernel_height; ++kh) {
      for (int64_t group = 0; group < groups_per_row; ++group) {
        for (int64_t block = 0; block < chunk_blocks; ++block) {
          for (int64_t lane = 0; lane < Isa::kLanes; ++lane) {
            const int64_t o = (chunk_start + block) * Isa::kLanes + lane;
            for (int64_t element = 0; element < Isa::kGroup; ++element) {
              const int64_t tap = group * Isa::kGroup + element;
              Weight value = 0;
              if (o < g.out_channels && tap < taps_per_row) {
                const int64_t kw = tap / g.in_channels;
                const int64_t c = tap % g.in_channels;
                value = static_cast<Weight>(
                    weight[((o * g.in_channels + c) * g.kernel_height + kh) * g.kernel_width + kw]);
              }
              chunk[index++] = value;
            }
          }
        }
      }
    }
  }
}

// Packs padded input rows [first_row, end_row) of one image channels-last
// into rows of plan.row_elements elements.
template <class Isa>
void pack_input_rows(const QuantizedTaskPlan& plan, int64_t image, int64_t first_row, int64_t end_row,
                     typename Isa::Input* rows, typename Isa::Input* staging) {
  using Input = typename Isa::Input;
  const ConvReluPoolShape& s = plan.shape;
  const int64_t channels = s.in_channels;
  const Input zero_point = static_cast<Input>(plan.parameters.input_zero_point);
  const float zero_point_float = static_cast<float>(plan.parameters.input_zero_point);
  const int64_t left = s.padding_width * channels;
  const int64_t interior = s.in_width * channels;

  for (int64_t row = first_row; row < end_row; ++row) {
    Input* destination = rows + (row - first_row) * plan.row_elements;
    const int64_t h = row - s.padding_height;
    if (h < 0 || h >= s.in_height) {
      std::fill(destination, destination + plan.row_elements, zero_point);
      continue;
    }
    std::fill(destination, destination + left, zero_point);
    std::fill(destination + left + interior, destination + plan.row_elements, zero_point);
    Input* pixels = destination + left;
    for (int64_t c = 0; c < channels; ++c) {
      const int64_t source_offset = ((image * channels + c) * s.in_height + h) * s.in_width;
      // With one channel the packed row is the quantized row itself.
      Input* values = channels == 1 ? pixels : staging;
      if (plan.tensors.input_float != nullptr) {
        Isa::quantize(plan.tensors.input_float + source_offset, s.in_width, plan.inverse_input_scale,
                      zero_point_float, values);
      } else {
        const uint8_t* source = plan.tensors.input_uint8 + source_offset;
        for (int64_t x = 0; x < s.in_width; ++x) {
          values[x] = static_cast<Input>(source[x]);
        }
      }
      if (channels > 1) {
        for (int64_t x = 0; x < s.in_width; ++x) {
          pixels[x * channels + c] = values[x];
        }
      }
    }
  }
}

// Computes convolution row conv_row for every used column and output
// channel into output, [column][padded channel].
template <class Isa>
void compute_conv_row(const QuantizedTaskPlan& plan, const typename Isa::Input* rows, int64_t first_row,
                      int64_t conv_row, int32_t* output) {
  const ConvReluPoolShape& s = plan.shape;
  const QuantizedPackedWeights& packed = *plan.packed;
  const int64_t groups_per_row = packed.row_elements / Isa::kGroup;
  const int64_t blocks = packed.padded_channels / Isa::kLanes;
  const int64_t block_elements = s.kernel_height * groups_per_row * Isa::kLanes * Isa::kGroup;
  const auto* weights = static_cast<const typename Isa::Weight*>(packed.packed.get());
  const typename Isa::Input* row = rows + (conv_row * s.stride_height - first_row) * plan.row_elements;
  const int64_t columns = plan.sizes.used_conv_width;

  for (int64_t chunk_start = 0; chunk_start < blocks; chunk_start += Isa::kMaxBlocks) {
    const int chunk_blocks = static_cast<int>(std::min<int64_t>(Isa::kMaxBlocks, blocks - chunk_start));
    const int tile_pixels = Isa::max_pixels(chunk_blocks);
    QuantizedTile tile;
    tile.pixel_stride = s.stride_width * s.in_channels;
    tile.row_stride = plan.row_elements;
    tile.kernel_rows = s.kernel_height;
    tile.groups_per_row = groups_per_row;
    tile.weight = weights + chunk_start * block_elements;
    tile.bias = plan.folded_bias + chunk_start * Isa::kLanes;
    tile.output_stride = packed.padded_channels;
    for (int64_t column = 0; column < columns; column += tile_pixels) {
      const int pixels = static_cast<int>(std::min<int64_t>(tile_pixels, columns - column));
      tile.input = row + column * tile.pixel_stride;
      tile.output = output + column * packed.padded_channels + chunk_start * Isa::kLanes;
      run_tile_with_blocks<Isa, Isa::kMaxBlocks>(chunk_blocks, pixels, tile);
    }
  }
}

// Writes requantized [pooled column][padded channel] values of pooled row
// pooled_row into the NCHW output.
inline void store_pooled_row(const QuantizedTaskPlan& plan, int64_t image, int64_t pooled_row,
                             const void* requantized) {
  const int64_t channels = plan.shape.out_channels;
  const int64_t padded = plan.packed->padded_channels;
  const int64_t height = plan.sizes.pooled_height;
  const int64_t width = plan.sizes.pooled_width;
  for (int64_t o = 0; o < channels; ++o) {
    const int64_t offset = ((image * channels + o) * height + pooled_row) * width;
    if (plan.parameters.float_output) {
      const auto* values = static_cast<const float*>(requantized);
      float* destination = plan.tensors.output_float + offset;
      for (int64_t x = 0; x < width; ++x) {
        destination[x] = values[x * padded + o];
      }
    } else {
      const auto* values = static_cast<const uint8_t*>(requantized);
      uint8_t* destination = plan.tensors.output_uint8 + offset;
      for (int64_t x = 0; x < width; ++x) {
        destination[x] = values[x * padded + o];
      }
    }
  }
}

// Computes pooled rows [first_pooled, end_pooled) of one image.
template <class Isa>
void run_quantized_rows(const QuantizedTaskPlan& plan, int64_t image, int64_t first_pooled, int64_t end_pooled,
                        unsigned char* scratch) {
  using Input = typename Isa::Input;
  const ConvReluPoolShape& s = plan.shape;
  const ConvReluPoolSizes& z = plan.sizes;
  const int64_t padded_channels = plan.packed->padded_channels;
  auto* rows = reinterpret_cast<Input*>(scratch + plan.input_offset);
  auto* staging = reinterpret_cast<Input*>(scratch + plan.staging_offset);
  auto* conv = reinterpret_cast<int32_t*>(scratch + plan.conv_offset);
  auto* row_max = reinterpret_cast<int32_t*>(scratch + plan.row_max_offset);
  auto* pooled = reinterpret_cast<int32_t*>(scratch + plan.pooled_offset);
  void* requantized = scratch + plan.requantized_offset;

  const int64_t first_conv = first_pooled * s.pool_stride_height;
  const int64_t end_conv = std::min((end_pooled - 1) * s.pool_stride_height + s.pool_kernel_height, z.conv_height);
  const int64_t first_row = first_conv * s.stride_height;
  const int64_t end_row = (end_conv - 1) * s.stride_height + s.kernel_height;
  pack_input_rows<Isa>(plan, image, first_row, end_row, rows, staging);

  const int64_t row_values = z.used_conv_width * padded_channels;
  for (int64_t pooled_row = first_pooled; pooled_row < end_pooled; ++pooled_row) {
    const int64_t window_first = pooled_row * s.pool_stride_height;
    const int64_t window_end = std::min(window_first + s.pool_kernel_height, z.conv_height);
    compute_conv_row<Isa>(plan, rows, first_row, window_first, row_max);
    for (int64_t conv_row = window_first + 1; conv_row < window_end; ++conv_row) {
      compute_conv_row<Isa>(plan, rows, first_row, conv_row, conv);
      for (int64_t index = 0; index < row_values; ++index) {
        row_max[index] = std::max(row_max[index], conv[index]);
      }
    }

    for (int64_t x = 0; x < z.pooled_width; ++x) {
      const int64_t column_first = x * s.pool_stride_width;
      const int64_t column_end = std::min(column_first + s.pool_kernel_width, z.conv_width);
      int32_t* destination = pooled + x * padded_channels;
      std::memcpy(destination, row_max + column_first * padded_channels,
                  static_cast<size_t>(padded_channels) * sizeof(int32_t));
      for (int64_t column = column_first + 1; column < column_end; ++column) {
        const int32_t* source = row_max + column * padded_channels;
        for (int64_t o = 0; o < padded_channels; ++o) {
          destination[o] = std::max(destination[o], source[o]);
        }
      }
    }

    Isa::requantize(pooled, plan.multiplier, z.pooled_width * padded_channels, padded_channels, plan.parameters,
                    requantized);
    store_pooled_row(plan, image, pooled_row, requantized);
  }
}

template <class Isa>
void run_quantized_tasks(void* context, int64_t begin, int64_t end, int worker) {
  const auto& plan = *static_cast<const QuantizedTaskPlan*>(context);
  unsigned char* scratch = plan.scratch + worker * plan.scratch_stride;
  for (int64_t task = begin; task < end; ++task) {
    const int64_t image = task / plan.row_group_count;
    const int64_t first_pooled = (task % plan.row_group_count) * plan.rows_per_task;
    const int64_t end_pooled = std::min(first_pooled + plan.rows_per_task, plan.sizes.pooled_height);
    run_quantized_rows<Isa>(plan, image, first_pooled, end_pooled, scratch);
  }
}

}  // namespace
}  // namespace fcnnzoo
