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
#include <type_traits>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "quantized_conv_relu_pool_plan.h"

namespace fcnnzoo {
namespace {

// Rounds half to even in the default rounding mode without a library call:
// adding and subtracting 2^23 leaves no fraction bits below the units.
// NaN, infinities and values of 2^23 or more are already integral.
inline float round_half_even(float value) {
  if (!(std::fabs(value) < 8388608.0F)) {
    return value;
  }
  const float magic = std::copysign(8388608.0F, value);
  return (value + magic) - magic;
}

// Step 1 of the arithmetic for one value; the vector code matches it.
inline uint8_t quantize_value(float value, float inverse_scale, float zero_point) {
  float shifted = round_half_even(value * inverse_scale) + zero_point;
  if (std::isnan(shifted)) {
    return static_cast<uint8_t>(zero_point);
  }
  shifted = std::min(std::max(shifted, 0.0F), 255.0F);
  return static_cast<uint8_t>(shifted);
}

// Steps 4 and 5 of the arithmetic for one accumulator: the quantized output q.
inline int requantize_value(int32_t accumulator, float multiplier, float zero_point, bool relu) {
  if (relu) {
    accumulator = std::max(accumulator, 0);
  }
  float shifted = round_half_even(static_cast<float>(accumulator) * multiplier) + zero_point;
  shifted = std::min(std::max(shifted, 0.0F), 255.0F);
  return static_cast<int>(shifted);
}

#if defined(__SSE2__)
// Transposes the 8x8 bytes at source (rows source_stride apart) into
// destination (rows destination_stride apart).
inline void transpose_8x8_bytes(const uint8_t* source, int64_t source_stride, uint8_t* destination,
                                int64_t destination_stride) {
  __m128i rows[8];
  for (int row = 0; row < 8; ++row) {
    rows[row] = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(source + row * source_stride));
  }
  const __m128i bytes01 = _mm_unpacklo_epi8(rows[0], rows[1]);
  const __m128i bytes23 = _mm_unpacklo_epi8(rows[2], rows[3]);
  const __m128i bytes45 = _mm_unpacklo_epi8(rows[4], rows[5]);
  const __m128i bytes67 = _mm_unpacklo_epi8(rows[6], rows[7]);
  const __m128i words0123_low = _mm_unpacklo_epi16(bytes01, bytes23);
  const __m128i words0123_high = _mm_unpackhi_epi16(bytes01, bytes23);
  const __m128i words4567_low = _mm_unpacklo_epi16(bytes45, bytes67);
  const __m128i words4567_high = _mm_unpackhi_epi16(bytes45, bytes67);
  const __m128i columns[4] = {
      _mm_unpacklo_epi32(words0123_low, words4567_low), _mm_unpackhi_epi32(words0123_low, words4567_low),
      _mm_unpacklo_epi32(words0123_high, words4567_high), _mm_unpackhi_epi32(words0123_high, words4567_high)};
  for (int pair = 0; pair < 4; ++pair) {
    _mm_storel_epi64(reinterpret_cast<__m128i*>(destination + (2 * pair) * destination_stride), columns[pair]);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(destination + (2 * pair + 1) * destination_stride),
                     _mm_unpackhi_epi64(columns[pair], columns[pair]));
  }
}
#endif

// destination[c * destination_stride + r] = source[r * source_stride + c]
// for r < rows and c < columns. With SSE2 and both sizes at least 8, the
// matrix is covered by 8x8 blocks, the last block of each axis overlapping
// its neighbour instead of running past the end.
inline void transpose_bytes(const uint8_t* source, int64_t source_stride, uint8_t* destination,
                            int64_t destination_stride, int64_t rows, int64_t columns) {
#if defined(__SSE2__)
  if (rows >= 8 && columns >= 8) {
    for (int64_t row_block = 0; row_block < rows; row_block += 8) {
      const int64_t row = std::min(row_block, rows - 8);
      for (int64_t column_block = 0; column_block < columns; column_block += 8) {
        const int64_t column = std::min(column_block, columns - 8);
        transpose_8x8_bytes(source + row * source_stride + column, source_stride,
                            destination + column * destination_stride + row, destination_stride);
      }
    }
    return;
  }
#endif
  for (int64_t row = 0; row < rows; ++row) {
    for (int64_t column = 0; column < columns; ++column) {
      destination[column * destination_stride + row] = source[row * source_stride + column];
    }
  }
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
  // Whether to store the maximum of the accumulators and the values already
  // in output, which pools the convolution rows of a window as they finish.
  bool max_into_output;
  // Whether to store only the maximum of each pair of neighbouring pixels,
  // pixel 2q and 2q + 1 into row q: a 2-wide pool with stride 2. The tile
  // then has an even number of pixels.
  bool pool_pairs;
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
// into rows of plan.row_elements elements. staging holds 2 * in_channels *
// in_width bytes: the quantized channel rows and, for wider Input types,
// the interleaved bytes before they are widened.
template <class Isa>
void pack_input_rows(const QuantizedTaskPlan& plan, int64_t image, int64_t first_row, int64_t end_row,
                     typename Isa::Input* rows, uint8_t* staging) {
  using Input = typename Isa::Input;
  constexpr bool kBytes = std::is_same_v<Input, uint8_t>;
  const ConvReluPoolShape& s = plan.shape;
  const int64_t channels = s.in_channels;
  const int64_t width = s.in_width;
  const Input zero_point = static_cast<Input>(plan.parameters.input_zero_point);
  const float zero_point_float = static_cast<float>(plan.parameters.input_zero_point);
  const int64_t left = s.padding_width * channels;
  const int64_t interior = width * channels;
  uint8_t* interleaved = staging + interior;

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

    // The quantized channel rows, plane_stride bytes apart.
    const uint8_t* planes = nullptr;
    int64_t plane_stride = 0;
    const int64_t source_offset = (image * channels * s.in_height + h) * width;
    if (plan.tensors.input_float != nullptr) {
      uint8_t* quantized = channels == 1 && kBytes ? reinterpret_cast<uint8_t*>(pixels) : staging;
      for (int64_t c = 0; c < channels; ++c) {
        Isa::quantize(plan.tensors.input_float + source_offset + c * s.in_height * width, width,
                      plan.inverse_input_scale, zero_point_float, quantized + c * width);
      }
      planes = quantized;
      plane_stride = width;
    } else {
      planes = plan.tensors.input_uint8 + source_offset;
      plane_stride = s.in_height * width;
    }

    if (channels == 1) {
      if (reinterpret_cast<const void*>(planes) != reinterpret_cast<const void*>(pixels)) {
        for (int64_t x = 0; x < width; ++x) {
          pixels[x] = static_cast<Input>(planes[x]);
        }
      }
      continue;
    }
    if constexpr (kBytes) {
      transpose_bytes(planes, plane_stride, pixels, channels, channels, width);
    } else {
      transpose_bytes(planes, plane_stride, interleaved, channels, channels, width);
      for (int64_t index = 0; index < interior; ++index) {
        pixels[index] = static_cast<Input>(interleaved[index]);
      }
    }
  }
}

// Computes columns output pixels, the first at input and the next ones
// pixel_stride elements apart, for every output channel into output,
// [column][padded channel]. With max_into_output it stores the maximum of
// them and the values output already holds, and with pool_pairs (columns
// even) the maximum of each pair of columns, [column / 2][padded channel].
template <class Isa>
void compute_conv_columns(const QuantizedTaskPlan& plan, const typename Isa::Input* input, int64_t columns,
                          int64_t pixel_stride, bool max_into_output, bool pool_pairs, int32_t* output) {
  const QuantizedPackedWeights& packed = *plan.packed;
  const int64_t kernel_height = plan.shape.kernel_height;
  const int64_t groups_per_row = packed.row_elements / Isa::kGroup;
  const int64_t blocks = packed.padded_channels / Isa::kLanes;
  const int64_t block_elements = kernel_height * groups_per_row * Isa::kLanes * Isa::kGroup;
  const auto* weights = static_cast<const typename Isa::Weight*>(packed.packed.get());

  for (int64_t chunk_start = 0; chunk_start < blocks; chunk_start += Isa::kMaxBlocks) {
    const int chunk_blocks = static_cast<int>(std::min<int64_t>(Isa::kMaxBlocks, blocks - chunk_start));
    const int tile_pixels = Isa::max_pixels(chunk_blocks);
    QuantizedTile tile;
    tile.pixel_stride = pixel_stride;
    tile.row_stride = plan.row_elements;
    tile.kernel_rows = kernel_height;
    tile.groups_per_row = groups_per_row;
    tile.weight = weights + chunk_start * block_elements;
    tile.bias = plan.folded_bias + chunk_start * Isa::kLanes;
    tile.output_stride = packed.padded_channels;
    tile.max_into_output = max_into_output;
    tile.pool_pairs = pool_pairs;
    for (int64_t column = 0; column < columns; column += tile_pixels) {
      const int pixels = static_cast<int>(std::min<int64_t>(tile_pixels, columns - column));
      tile.input = input + column * pixel_stride;
      const int64_t output_column = pool_pairs ? column / 2 : column;
      tile.output = output + output_column * packed.padded_channels + chunk_start * Isa::kLanes;
      run_tile_with_blocks<Isa, Isa::kMaxBlocks>(chunk_blocks, pixels, tile);
    }
  }
}

// Writes the requantized values of pooled rows [first_pooled, end_pooled),
// [pooled position][padded channel], into the NCHW output.
inline void store_pooled_rows(const QuantizedTaskPlan& plan, int64_t image, int64_t first_pooled,
                              int64_t end_pooled, const void* requantized) {
  const int64_t channels = plan.shape.out_channels;
  const int64_t padded = plan.packed->padded_channels;
  const int64_t plane = plan.sizes.pooled_height * plan.sizes.pooled_width;
  const int64_t positions = (end_pooled - first_pooled) * plan.sizes.pooled_width;
  const int64_t offset = image * channels * plane + first_pooled * plan.sizes.pooled_width;
  if (plan.parameters.float_output) {
    const auto* values = static_cast<const float*>(requantized);
    for (int64_t o = 0; o < channels; ++o) {
      float* destination = plan.tensors.output_float + offset + o * plane;
      for (int64_t position = 0; position < positions; ++position) {
        destination[position] = values[position * padded + o];
      }
    }
    return;
  }
  transpose_bytes(static_cast<const uint8_t*>(requantized), padded, plan.tensors.output_uint8 + offset, plane,
                  positions, channels);
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
  auto* staging = reinterpret_cast<uint8_t*>(scratch + plan.staging_offset);
  auto* row_max = reinterpret_cast<int32_t*>(scratch + plan.row_max_offset);
  auto* pooled = reinterpret_cast<int32_t*>(scratch + plan.pooled_offset);
  unsigned char* requantized = scratch + plan.requantized_offset;
  const int64_t value_bytes = plan.parameters.float_output ? 4 : 1;

  const int64_t first_conv = first_pooled * s.pool_stride_height;
  const int64_t end_conv = std::min((end_pooled - 1) * s.pool_stride_height + s.pool_kernel_height, z.conv_height);
  const int64_t first_row = first_conv * s.stride_height;
  const int64_t end_row = (end_conv - 1) * s.stride_height + s.kernel_height;
  pack_input_rows<Isa>(plan, image, first_row, end_row, rows, staging);

  // Pools of width 2 and stride 2 are pooled along the row inside the tiles.
  const bool pool_pairs = s.pool_kernel_width == 2 && s.pool_stride_width == 2 && z.used_conv_width % 2 == 0;
  for (int64_t pooled_row = first_pooled; pooled_row < end_pooled; ++pooled_row) {
    const int64_t window_first = pooled_row * s.pool_stride_height;
    const int64_t window_end = std::min(window_first + s.pool_kernel_height, z.conv_height);
    for (int64_t conv_row = window_first; conv_row < window_end; ++conv_row) {
      const Input* row = rows + (conv_row * s.stride_height - first_row) * plan.row_elements;
      compute_conv_columns<Isa>(plan, row, z.used_conv_width, s.stride_width * s.in_channels,
                                conv_row > window_first, pool_pairs, row_max);
    }

    const int32_t* pooled_values = row_max;
    for (int64_t x = 0; x < z.pooled_width && !pool_pairs; ++x) {
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
      pooled_values = pooled;
    }

    const int64_t row_offset = (pooled_row - first_pooled) * z.pooled_width * padded_channels * value_bytes;
    Isa::requantize(pooled_values, plan.multiplier, z.pooled_width * padded_channels, padded_channels,
                    plan.parameters, requantized + row_offset);
  }
  store_pooled_rows(plan, image, first_pooled, end_pooled, requantized);
}

// Computes images [first_image, end_image) of a call in linear mode: 1x1
// inputs and kernels, where the images of a task are the pixels of one row.
template <class Isa>
void run_linear_images(const QuantizedTaskPlan& plan, int64_t first_image, int64_t end_image,
                       unsigned char* scratch) {
  using Input = typename Isa::Input;
  constexpr bool kBytes = std::is_same_v<Input, uint8_t>;
  const int64_t channels = plan.shape.in_channels;
  const int64_t out_channels = plan.shape.out_channels;
  const int64_t padded_channels = plan.packed->padded_channels;
  const int64_t images = end_image - first_image;
  const int64_t values = images * channels;
  auto* rows = reinterpret_cast<Input*>(scratch + plan.input_offset);
  auto* staging = reinterpret_cast<uint8_t*>(scratch + plan.staging_offset);
  auto* accumulators = reinterpret_cast<int32_t*>(scratch + plan.row_max_offset);
  unsigned char* requantized = scratch + plan.requantized_offset;

  const uint8_t* quantized = nullptr;
  if (plan.tensors.input_float != nullptr) {
    uint8_t* destination = kBytes ? reinterpret_cast<uint8_t*>(rows) : staging;
    Isa::quantize(plan.tensors.input_float + first_image * channels, values, plan.inverse_input_scale,
                  static_cast<float>(plan.parameters.input_zero_point), destination);
    quantized = destination;
  } else {
    quantized = plan.tensors.input_uint8 + first_image * channels;
  }
  if (reinterpret_cast<const void*>(quantized) != reinterpret_cast<const void*>(rows)) {
    for (int64_t index = 0; index < values; ++index) {
      rows[index] = static_cast<Input>(quantized[index]);
    }
  }

  compute_conv_columns<Isa>(plan, rows, images, channels, false, false, accumulators);
  Isa::requantize(accumulators, plan.multiplier, images * padded_channels, padded_channels, plan.parameters,
                  requantized);
  const size_t value_bytes = plan.parameters.float_output ? sizeof(float) : sizeof(uint8_t);
  unsigned char* output = plan.parameters.float_output
                              ? reinterpret_cast<unsigned char*>(plan.tensors.output_float)
                              : reinterpret_cast<unsigned char*>(plan.tensors.output_uint8);
  for (int64_t image = 0; image < images; ++image) {
    std::memcpy(output + (first_image + image) * out_channels * value_bytes,
                requantized + image * padded_channels * value_bytes, static_cast<size_t>(out_channels) * value_bytes);
  }
}

template <class Isa>
void run_quantized_tasks(void* context, int64_t begin, int64_t end, int worker) {
  const auto& plan = *static_cast<const QuantizedTaskPlan*>(context);
  unsigned char* scratch = plan.scratch + worker * plan.scratch_stride;
  for (int64_t task = begin; task < end; ++task) {
    if (plan.linear) {
      const int64_t first_image = task * plan.images_per_task;
      run_linear_images<Isa>(plan, first_image, std::min(first_image + plan.images_per_task, plan.shape.batch),
                             scratch);
      continue;
    }
    const int64_t image = task / plan.row_group_count;
    const int64_t first_pooled = (task % plan.row_group_count) * plan.rows_per_task;
    const int64_t end_pooled = std::min(first_pooled + plan.rows_per_task, plan.sizes.pooled_height);
    run_quantized_rows<Isa>(plan, image, first_pooled, end_pooled, scratch);
  }
}

}  // namespace
}  // namespace fcnnzoo
