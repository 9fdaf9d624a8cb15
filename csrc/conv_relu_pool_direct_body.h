// The body of the direct kernel: templates over the number of output
// channels per vector (kLanes) and the maximum tile width (kMaxTile).
//
// Each conv_relu_pool_isa_<isa>.cpp includes this file and is compiled with
// its own instruction-set flags, so the same source becomes AVX-512, AVX2 or
// portable code. Everything here sits in an anonymous namespace and calls no
// standard-library function. An inline function with vague linkage compiled
// with AVX-512 could otherwise be merged by the linker into code that runs on
// CPUs without AVX-512.
//
// A task covers one image, one block of kLanes output channels and a range
// of pooled rows. Each convolution row that a pooling window of the range
// covers is split into tiles of at most kMaxTile outputs. A tile keeps its
// accumulators in registers, one vector of kLanes output channels per
// output, and adds each input value times the weight vector of its
// (in_channel, kh, kw). The finished tile is merged with max into a buffer
// with one row per pooled row, which performs the vertical pooling. The
// first row of each window is stored as max(0, x) instead, which applies the
// ReLU because max(0, a, b) == max(relu(a), relu(b)). Horizontal pooling
// then collects the pooled values of the task, and a transpose in registers
// writes them to the NCHW output. Convolution outputs that no pooling window
// covers are never computed.
//
// Groups and dilation: a channel block lies inside one group, so its tiles
// read only that group's input channels, and the kernel taps of a row lie
// dilation_width columns apart. A depthwise convolution (each output
// channel reads its own input channel) reads a channels-last copy of the
// block's kLanes channels instead, so each tap is one vector load and one
// vector multiply-add for all lanes.
//
// Indices: the variants instantiated with kIndices also keep, beside each
// row-max buffer, the window row of its value, and the horizontal pooling
// turns it into the window position of each pooled value. A later value
// replaces the kept one only when it is strictly greater, or equal and
// earlier in row-major order, so the first maximum wins as in max_pool2d.
//
// NaN: the fast merge `a > b ? a : b` drops a NaN convolution output. To stay
// exact without slowing every merge, the tiles also add all their outputs
// into a probe vector. When the probe ends up NaN (a NaN output, or an
// overflow that produced inf - inf), the task is recomputed with a merge
// that keeps NaN.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

#include "conv_relu_pool_plan.h"

#if !defined(__GNUC__)
#error "the direct kernel needs the GCC or Clang vector extensions"
#endif

#define FCNNZOO_INLINE inline __attribute__((always_inline))

namespace fcnnzoo {
namespace {

FCNNZOO_INLINE int64_t min_of(int64_t first, int64_t second) { return first < second ? first : second; }

FCNNZOO_INLINE int64_t max_of(int64_t first, int64_t second) { return first > second ? first : second; }

// Vector types of kLanes lanes: Type holds floats, Mask the all-ones or
// all-zeros int32 lanes that vector comparisons return, Bits uint32 lanes.
template <int kLanes>
struct VectorOf;
template <>
struct VectorOf<16> {
  typedef float Type __attribute__((vector_size(64)));
  typedef int32_t Mask __attribute__((vector_size(64)));
  typedef uint32_t Bits __attribute__((vector_size(64)));
};
template <>
struct VectorOf<8> {
  typedef float Type __attribute__((vector_size(32)));
  typedef int32_t Mask __attribute__((vector_size(32)));
  typedef uint32_t Bits __attribute__((vector_size(32)));
};
template <>
struct VectorOf<4> {
  typedef float Type __attribute__((vector_size(16)));
  typedef int32_t Mask __attribute__((vector_size(16)));
  typedef uint32_t Bits __attribute__((vector_size(16)));
};

template <class Vector>
FCNNZOO_INLINE Vector load_vector(const float* source) {
  Vector value;
  __builtin_memcpy(&value, source, sizeof(value));
  return value;
}

template <class Vector>
FCNNZOO_INLINE void store_vector(float* target, const Vector& value) {
  __builtin_memcpy(target, &value, sizeof(value));
}

// Returns the lanes of first where take is set and of second elsewhere.
// Written with bitwise operations, which compile to a blend. GCC 12 turned
// the equivalent vector ?: with a two-comparison condition into one branch
// per lane in an AVX-512 build.
template <class Vector, class Mask>
FCNNZOO_INLINE Vector select_lanes(const Mask& take, const Vector& first, const Vector& second) {
  return (Vector)((take & (Mask)first) | (~take & (Mask)second));
}

// Lane-wise maximum in which NaN wins, as in torch.max_pool2d.
template <class Vector>
FCNNZOO_INLINE Vector nan_propagating_max(const Vector& value, const Vector& maximum) {
  return select_lanes((value > maximum) | (value != value), value, maximum);
}

// Lane-wise maximum of vectors whose lanes are +0, positive or NaN, in which
// NaN wins. Read as unsigned integers, such floats keep their order, and
// every NaN lies above +inf whatever its sign bit, so one unsigned integer
// max is enough. It would be wrong for -0 and negative values.
template <int kLanes>
FCNNZOO_INLINE typename VectorOf<kLanes>::Type nonnegative_max(const typename VectorOf<kLanes>::Type& first,
                                                               const typename VectorOf<kLanes>::Type& second) {
  using Vector = typename VectorOf<kLanes>::Type;
  using Bits = typename VectorOf<kLanes>::Bits;
  const Bits first_bits = (Bits)first;
  const Bits second_bits = (Bits)second;
  return (Vector)(first_bits > second_bits ? first_bits : second_bits);
}

// Lane-wise maximum that may drop NaN, one instruction on x86.
template <class Vector>
FCNNZOO_INLINE Vector fast_max(const Vector& value, const Vector& maximum) {
  return value > maximum ? value : maximum;
}

// Returns the lanes of first and second picked by kIndex (0 to 2 kLanes - 1,
// indices of kLanes and above pick from second). GCC before 12 lacks
// __builtin_shufflevector but has the equivalent __builtin_shuffle.
template <int kLanes, int... kIndex>
FCNNZOO_INLINE typename VectorOf<kLanes>::Type shuffle_lanes(const typename VectorOf<kLanes>::Type& first,
                                                             const typename VectorOf<kLanes>::Type& second) {
#if defined(__clang__) || __GNUC__ >= 12
  return __builtin_shufflevector(first, second, kIndex...);
#else
  return __builtin_shuffle(first, second, typename VectorOf<kLanes>::Mask{kIndex...});
#endif
}

// One step of an in-register transpose: swaps the kStep-wide off-diagonal
// blocks of rows first and second, which must be kStep rows apart.
template <int kLanes, int kStep, size_t... kIndex>
FCNNZOO_INLINE void swap_blocks(typename VectorOf<kLanes>::Type& first, typename VectorOf<kLanes>::Type& second,
                                std::index_sequence<kIndex...>) {
  using Vector = typename VectorOf<kLanes>::Type;
  const Vector new_first =
      shuffle_lanes<kLanes, ((kIndex & kStep) == 0 ? int(kIndex) : kLanes + int(kIndex) - kStep)...>(first, second);
  const Vector new_second =
      shuffle_lanes<kLanes, ((kIndex & kStep) == 0 ? int(kIndex) + kStep : kLanes + int(kIndex))...>(first, second);
  first = new_first;
  second = new_second;
}

// Transposes the kLanes x kLanes matrix held in rows, kLanes log2(kLanes)
// two-source shuffles in all.
template <int kLanes, int kStep = kLanes / 2>
FCNNZOO_INLINE void transpose(typename VectorOf<kLanes>::Type* rows) {
#pragma GCC unroll 16
  for (int row = 0; row < kLanes; ++row) {
    if ((row & kStep) == 0) {
      swap_blocks<kLanes, kStep>(rows[row], rows[row + kStep], std::make_index_sequence<kLanes>{});
    }
  }
  if constexpr (kStep > 1) {
    transpose<kLanes, kStep / 2>(rows);
  }
}

// An image the convolution reads: element (channel, y, x) is at
// data[channel * channel_stride + y * row_stride + x * column_stride].
struct SourceView {
  const float* data;
  int64_t channel_stride;
  int64_t row_stride;
  int64_t column_stride;
};

// Arguments of the innermost loop nest, for one channel block and one row.
// output_column_stride is the distance between the first inputs of two
// neighbouring outputs of a row: stride_width * column_stride.
// kernel_row_stride and kernel_column_stride are the distances between
// neighbouring kernel taps: the dilation times row_stride or column_stride.
struct TileContext {
  const float* weights;
  // Distance from a row-max buffer entry to its winning-row entry, and the
  // pooling stride between windows of consecutive pooled rows; used only
  // with kIndices.
  int64_t winner_offset;
  int64_t pool_stride_height;
  int64_t in_channels;
  int64_t kernel_height;
  int64_t kernel_width;
  int64_t channel_stride;
  int64_t row_stride;
  int64_t column_stride;
  int64_t output_column_stride;
  int64_t kernel_row_stride;
  int64_t kernel_column_stride;
  int64_t merge_row_stride;
};

// Computes kWidth convolution outputs of one row for one channel block and
// merges them into merge_rows consecutive row-max buffers. input points at
// the first input value of the first output (channel 0, kh 0, kw 0). The
// buffers from first_written_row on belong to pooling windows whose first
// row inside the convolution output is this row, so they are written
// instead of merged.
// kExactNan selects a merge that keeps NaN; the fast merge drops a NaN value
// but adds every output to nan_probe, so the caller can detect that case.
// kUnitStride requires column_stride == output_column_stride == 1. With
// kIndices, window_row is the row of this convolution row inside the window
// of the first buffer. kDepthwise reads a channels-last source, whose taps
// are vectors of kLanes channels (column_stride == kLanes).
template <int kLanes, int kWidth, bool kUnitStride, bool kExactNan, bool kIndices, bool kDepthwise>
FCNNZOO_INLINE void convolve_tile(const TileContext& context, const typename VectorOf<kLanes>::Type& bias,
                                  const float* __restrict__ input, float* __restrict__ row_max, int64_t merge_rows,
                                  int64_t first_written_row, int64_t window_row,
                                  typename VectorOf<kLanes>::Type& nan_probe) {
  using Vector = typename VectorOf<kLanes>::Type;
  Vector sums[kWidth];
#pragma GCC unroll 16
  for (int t = 0; t < kWidth; ++t) {
    sums[t] = bias;
  }

  const float* __restrict__ weights = context.weights;
  const float* channel_input = input;
  for (int64_t channel = 0; channel < context.in_channels; ++channel, channel_input += context.channel_stride) {
    const float* row_input = channel_input;
    for (int64_t kh = 0; kh < context.kernel_height; ++kh, row_input += context.kernel_row_stride) {
      for (int64_t kw = 0; kw < context.kernel_width; ++kw, weights += kLanes) {
        const Vector weight = load_vector<Vector>(weights);
        const float* tap = row_input + kw * context.kernel_column_stride;
#pragma GCC unroll 16
        for (int t = 0; t < kWidth; ++t) {
          if constexpr (kDepthwise) {
            sums[t] += weight * load_vector<Vector>(tap + t * context.output_column_stride);
          } else {
            sums[t] += weight * tap[kUnitStride ? t : t * context.output_column_stride];
          }
        }
      }
    }
  }

  // Starting a window at zero applies the ReLU: max(0, a, b) == max(relu(a), relu(b)).
  const Vector zero = {};
  for (int64_t row = 0; row < merge_rows; ++row) {
    float* target = row_max + row * context.merge_row_stride;
    float* winner = target + context.winner_offset;
    const Vector row_in_window = zero + static_cast<float>(window_row - row * context.pool_stride_height);
    if (row >= first_written_row) {
#pragma GCC unroll 16
      for (int t = 0; t < kWidth; ++t) {
        const Vector relu = kExactNan ? nan_propagating_max(sums[t], zero) : fast_max(sums[t], zero);
        store_vector(target + t * kLanes, relu);
        if constexpr (kIndices) {
          store_vector(winner + t * kLanes, row_in_window);
        }
      }
      continue;
    }
#pragma GCC unroll 16
    for (int t = 0; t < kWidth; ++t) {
      const Vector current = load_vector<Vector>(target + t * kLanes);
      const Vector merged = kExactNan ? nan_propagating_max(sums[t], current) : fast_max(sums[t], current);
      store_vector(target + t * kLanes, merged);
      if constexpr (kIndices) {
        // A later NaN row replaces an earlier one, as in max_pool2d.
        const Vector kept = load_vector<Vector>(winner + t * kLanes);
        const auto take = kExactNan ? (sums[t] > current) | (sums[t] != sums[t]) : sums[t] > current;
        store_vector(winner + t * kLanes, select_lanes(take, row_in_window, kept));
      }
    }
  }

  if (!kExactNan) {
    Vector total = sums[0];
#pragma GCC unroll 16
    for (int t = 1; t < kWidth; ++t) {
      total += sums[t];
    }
    nan_probe += total;
  }
}

// Runs convolve_tile with the compile-time width equal to width, which must
// be in [1, kWidth].
template <int kLanes, int kWidth, bool kUnitStride, bool kIndices, bool kDepthwise>
FCNNZOO_INLINE void convolve_tile_of_width(int64_t width, const TileContext& context,
                                           const typename VectorOf<kLanes>::Type& bias, const float* input,
                                           float* row_max, int64_t merge_rows, int64_t first_written_row,
                                           int64_t window_row, typename VectorOf<kLanes>::Type& nan_probe) {
  if constexpr (kWidth > 1) {
    if (width < kWidth) {
      convolve_tile_of_width<kLanes, kWidth - 1, kUnitStride, kIndices, kDepthwise>(
          width, context, bias, input, row_max, merge_rows, first_written_row, window_row, nan_probe);
      return;
    }
  }
  convolve_tile<kLanes, kWidth, kUnitStride, false, kIndices, kDepthwise>(context, bias, input, row_max, merge_rows,
                                                                           first_written_row, window_row, nan_probe);
}

// Fills the row-max buffers of pooled rows [first_row, last_row) of one
// channel block with the ReLU'd, vertically pooled convolution rows.
// Returns false when the fast merge may have dropped a NaN, in which case
// the buffers must be recomputed with kExactNan. With kIndices, row_winner
// receives the window row of each buffer value.
template <int kLanes, int kMaxTile, bool kExactNan, bool kIndices, bool kDepthwise>
FCNNZOO_INLINE bool convolve_rows(const KernelPlan& plan, const SourceView& source, int64_t block, int64_t first_row,
                                  int64_t last_row, float* row_max, float* row_winner) {
  using Vector = typename VectorOf<kLanes>::Type;
  const ConvReluPoolShape& shape = plan.shape;
  const ConvReluPoolSizes& sizes = plan.sizes;
  const int64_t used_width = sizes.used_conv_width;
  const int64_t merge_row_stride = used_width * kLanes;
  const int64_t channels = group_in_channels(shape);
  const int64_t weights_per_block = channels * shape.kernel_height * shape.kernel_width * kLanes;
  const int64_t output_column_stride = shape.stride_width * source.column_stride;
  const bool unit_stride = !kDepthwise && output_column_stride == 1;
  // The block's group starts at this input channel; a depthwise source holds only the block's channels.
  const int64_t first_channel =
      kDepthwise ? 0 : block * kLanes / (shape.out_channels / shape.groups) * channels;
  // Tiles of nearly equal width, at most kMaxTile each.
  const int64_t tile_count = (used_width + kMaxTile - 1) / kMaxTile;

  const TileContext context{plan.packed_weight + block * weights_per_block,
                            kIndices ? row_winner - row_max : 0,
                            shape.pool_stride_height,
                            channels,
                            shape.kernel_height,
                            shape.kernel_width,
                            source.channel_stride,
                            source.row_stride,
                            source.column_stride,
                            output_column_stride,
                            shape.dilation_height * source.row_stride,
                            shape.dilation_width * source.column_stride,
                            merge_row_stride};
  const Vector bias = load_vector<Vector>(plan.packed_bias + block * kLanes);
  Vector nan_probe = {};

  // Rows are visited in increasing order, so the first row that reaches a
  // buffer is the first row of its window inside the convolution output,
  // and every buffer is written before it is merged into. A window of
  // pooled row py covers rows [py * stride - padding, py * stride - padding
  // + kernel), and its rows above row 0 are pool padding, which never wins.
  const int64_t pool_padding = shape.pool_padding_height;
  const int64_t conv_begin = max_of(first_row * shape.pool_stride_height - pool_padding, 0);
  const int64_t conv_end = min_of((last_row - 1) * shape.pool_stride_height - pool_padding + shape.pool_kernel_height,
                                  sizes.used_conv_height);
  for (int64_t conv_row = conv_begin; conv_row < conv_end; ++conv_row) {
    const int64_t padded_row = conv_row + pool_padding;
    int64_t lowest = padded_row < shape.pool_kernel_height
                         ? 0
                         : (padded_row - shape.pool_kernel_height) / shape.pool_stride_height + 1;
    lowest = max_of(lowest, first_row);
    const int64_t highest = min_of(padded_row / shape.pool_stride_height, last_row - 1);
    if (lowest > highest) {
      continue;
    }
    const int64_t merge_rows = highest - lowest + 1;
    // Window starts grow with py, so the windows that start at this row are
    // the last ones. Several start at row 0 when the padding clips them.
    int64_t first_written_row = merge_rows;
    for (int64_t py = lowest; py <= highest; ++py) {
      if (max_of(py * shape.pool_stride_height - pool_padding, 0) == conv_row) {
        first_written_row = py - lowest;
        break;
      }
    }
    const float* row_input =
        source.data + first_channel * source.channel_stride + conv_row * shape.stride_height * source.row_stride;
    float* row_target = row_max + (lowest - first_row) * merge_row_stride;
    const int64_t window_row = padded_row - lowest * shape.pool_stride_height;

    if (kExactNan) {
      for (int64_t column = 0; column < used_width; ++column) {
        convolve_tile<kLanes, 1, false, true, kIndices, kDepthwise>(
            context, bias, row_input + column * output_column_stride, row_target + column * kLanes, merge_rows,
            first_written_row, window_row, nan_probe);
      }
      continue;
    }

    for (int64_t tile = 0; tile < tile_count; ++tile) {
      const int64_t column_begin = tile * used_width / tile_count;
      const int64_t column_end = (tile + 1) * used_width / tile_count;
      const float* tile_input = row_input + column_begin * output_column_stride;
      float* tile_target = row_target + column_begin * kLanes;
      if (unit_stride) {
        convolve_tile_of_width<kLanes, kMaxTile, true, kIndices, kDepthwise>(column_end - column_begin, context,
                                                                             bias, tile_input, tile_target,
                                                                             merge_rows, first_written_row,
                                                                             window_row, nan_probe);
      } else {
        convolve_tile_of_width<kLanes, kMaxTile, false, kIndices, kDepthwise>(column_end - column_begin, context,
                                                                              bias, tile_input, tile_target,
                                                                              merge_rows, first_written_row,
                                                                              window_row, nan_probe);
      }
    }
  }

  if (!kExactNan) {
    for (int lane = 0; lane < kLanes; ++lane) {
      if (nan_probe[lane] != nan_probe[lane]) {
        return false;
      }
    }
  }
  return true;
}

// Pools the row-max buffers of pooled rows [first_row, last_row)
// horizontally into pooled: one vector of kLanes channels per output
// position, with positions numbered row by row. With kIndices, row_winner
// holds the window rows of the buffers, and pooled_index receives the window
// position of each pooled value in the same layout as pooled.
template <int kLanes, bool kIndices>
FCNNZOO_INLINE void pool_rows(const KernelPlan& plan, int64_t first_row, int64_t last_row, const float* row_max,
                              const float* row_winner, float* pooled, float* pooled_index) {
  using Vector = typename VectorOf<kLanes>::Type;
  using Bits = typename VectorOf<kLanes>::Bits;
  const ConvReluPoolShape& shape = plan.shape;
  const ConvReluPoolSizes& sizes = plan.sizes;
  const Vector window_width = Vector{} + static_cast<float>(shape.pool_kernel_width);

  for (int64_t pooled_row = first_row; pooled_row < last_row; ++pooled_row) {
    const int64_t row_offset = (pooled_row - first_row) * sizes.used_conv_width * kLanes;
    const int64_t target_offset = (pooled_row - first_row) * sizes.pooled_width * kLanes;
    const float* row = row_max + row_offset;
    float* target = pooled + target_offset;
    for (int64_t px = 0; px < sizes.pooled_width; ++px) {
      // The window's columns left of column 0 are pool padding, which never wins.
      const int64_t begin = px * shape.pool_stride_width - shape.pool_padding_width;
      const int64_t first = max_of(begin, 0);
      const int64_t end = min_of(begin + shape.pool_kernel_width, sizes.conv_width);
      // The buffers hold ReLU outputs, so nonnegative_max applies.
      Vector maximum = load_vector<Vector>(row + first * kLanes);
      if constexpr (!kIndices) {
        for (int64_t column = first + 1; column < end; ++column) {
          maximum = nonnegative_max<kLanes>(load_vector<Vector>(row + column * kLanes), maximum);
        }
      } else {
        // Read as unsigned integers, the ReLU outputs keep their order (see
        // nonnegative_max). A value equal to the kept one wins only from an
        // earlier window row. Between NaN values, the later position in
        // row-major order wins, as in max_pool2d.
        const float* winner = row_winner + row_offset;
        Vector index = load_vector<Vector>(winner + first * kLanes) * window_width + static_cast<float>(first - begin);
        for (int64_t column = first + 1; column < end; ++column) {
          const Vector value = load_vector<Vector>(row + column * kLanes);
          const Vector candidate = load_vector<Vector>(winner + column * kLanes) * window_width +
                                   static_cast<float>(column - begin);
          const Bits value_bits = (Bits)value;
          const Bits maximum_bits = (Bits)maximum;
          const auto both_nan = (value != value) & (maximum != maximum);
          const auto take = (~both_nan & ((value_bits > maximum_bits) |
                                          ((value_bits == maximum_bits) & (candidate < index)))) |
                            (both_nan & (candidate > index));
          maximum = select_lanes(take, value, maximum);
          index = select_lanes(take, candidate, index);
        }
        store_vector(pooled_index + target_offset + px * kLanes, index);
      }
      store_vector(target + px * kLanes, maximum);
    }
  }
}

// Writes the pooled positions of rows [first_row, last_row) of one channel
// block to the NCHW output, or, when Target is uint8_t, their window
// positions to the NCHW indices. Consecutive rows of one channel are contiguous
// there, so the positions of a channel form one run. Blocks of kLanes x
// kLanes values are transposed in registers and stored as vectors. When the
// run is not a multiple of kLanes, the last block overlaps the one before it
// and stores some values twice. pooled must have room for a multiple of
// kLanes positions, and the surplus ones are read but never stored.
template <int kLanes, class Target = float>
FCNNZOO_INLINE void store_pooled(const KernelPlan& plan, int64_t image, int64_t block, int64_t first_row,
                                 int64_t last_row, const float* pooled) {
  using Vector = typename VectorOf<kLanes>::Type;
  const ConvReluPoolShape& shape = plan.shape;
  const ConvReluPoolSizes& sizes = plan.sizes;
  const int64_t lanes = min_of(kLanes, shape.out_channels - block * kLanes);
  const int64_t plane = sizes.pooled_height * sizes.pooled_width;
  const int64_t count = (last_row - first_row) * sizes.pooled_width;
  Target* base;
  if constexpr (sizeof(Target) == 1) {
    base = plan.indices;
  } else {
    base = plan.output;
  }
  Target* output = base + (image * shape.out_channels + block * kLanes) * plane + first_row * sizes.pooled_width;

  for (int64_t start = 0; start < count; start += kLanes) {
    const int64_t position = (start + kLanes <= count || count < kLanes) ? start : count - kLanes;
    Vector rows[kLanes];
#pragma GCC unroll 16
    for (int lane = 0; lane < kLanes; ++lane) {
      rows[lane] = load_vector<Vector>(pooled + (position + lane) * kLanes);
    }
    transpose<kLanes>(rows);

    if (count < kLanes) {
      for (int64_t lane = 0; lane < lanes; ++lane) {
        for (int64_t index = 0; index < count; ++index) {
          output[lane * plane + index] = static_cast<Target>(rows[lane][index]);
        }
      }
      continue;
    }
    for (int64_t lane = 0; lane < lanes; ++lane) {
      if constexpr (sizeof(Target) == 1) {
#pragma GCC unroll 16
        for (int index = 0; index < kLanes; ++index) {
          output[lane * plane + position + index] = static_cast<Target>(rows[lane][index]);
        }
      } else {
        store_vector(output + lane * plane + position, rows[lane]);
      }
    }
  }
}

// Packs weight (out_channels, taps) into [block][tap][lane] and bias (or
// zeros when bias is null) into [block][lane], with zeros for the lanes past
// out_channels. Full blocks of kLanes x kLanes weights are transposed in
// registers.
template <int kLanes>
FCNNZOO_INLINE void pack_weights(const ConvReluPoolShape& shape, const float* weight, const float* bias,
                                 float* packed_weight, float* packed_bias) {
  using Vector = typename VectorOf<kLanes>::Type;
  const int64_t taps = group_in_channels(shape) * shape.kernel_height * shape.kernel_width;
  const int64_t block_count = (shape.out_channels + kLanes - 1) / kLanes;

  for (int64_t block = 0; block < block_count; ++block) {
    const int64_t first_channel = block * kLanes;
    const int64_t lanes = min_of(kLanes, shape.out_channels - first_channel);
    const float* source = weight + first_channel * taps;
    float* target = packed_weight + block * taps * kLanes;
    for (int64_t lane = 0; lane < kLanes; ++lane) {
      packed_bias[first_channel + lane] = lane < lanes && bias != nullptr ? bias[first_channel + lane] : 0.0f;
    }

    int64_t tap = 0;
    if (lanes == kLanes) {
      for (; tap + kLanes <= taps; tap += kLanes) {
        Vector rows[kLanes];
#pragma GCC unroll 16
        for (int lane = 0; lane < kLanes; ++lane) {
          rows[lane] = load_vector<Vector>(source + lane * taps + tap);
        }
        transpose<kLanes>(rows);
#pragma GCC unroll 16
        for (int index = 0; index < kLanes; ++index) {
          store_vector(target + (tap + index) * kLanes, rows[index]);
        }
      }
    }
    for (; tap < taps; ++tap) {
      for (int64_t lane = 0; lane < kLanes; ++lane) {
        target[tap * kLanes + lane] = lane < lanes ? source[lane * taps + tap] : 0.0f;
      }
    }
  }
}

// Returns the image the convolution reads. With padding, the image is first
// copied with zeros around it into the worker's scratch memory, unless that
// copy already contains it.
FCNNZOO_INLINE SourceView prepare_source(const KernelPlan& plan, int64_t image, float* image_scratch,
                                         int64_t& cached_image) {
  const ConvReluPoolShape& shape = plan.shape;
  const float* input = plan.input + image * shape.in_channels * shape.in_height * shape.in_width;
  if (!plan.copies_padded_image) {
    return SourceView{input, shape.in_height * shape.in_width, shape.in_width, 1};
  }
  const SourceView copy{image_scratch, plan.source_height * plan.source_width, plan.source_width, 1};
  if (cached_image == image) {
    return copy;
  }

  const int64_t width = plan.source_width;
  const int64_t copy_begin = min_of(shape.padding_width, width);
  const int64_t copy_end = min_of(shape.padding_width + shape.in_width, width);
  for (int64_t channel = 0; channel < shape.in_channels; ++channel) {
    for (int64_t y = 0; y < plan.source_height; ++y) {
      float* target = image_scratch + (channel * plan.source_height + y) * width;
      const int64_t input_row = y - shape.padding_height;
      if (input_row < 0 || input_row >= shape.in_height) {
        __builtin_memset(target, 0, static_cast<size_t>(width) * sizeof(float));
        continue;
      }
      const float* row = input + (channel * shape.in_height + input_row) * shape.in_width;
      __builtin_memset(target, 0, static_cast<size_t>(copy_begin) * sizeof(float));
      __builtin_memcpy(target + copy_begin, row, static_cast<size_t>(copy_end - copy_begin) * sizeof(float));
      __builtin_memset(target + copy_end, 0, static_cast<size_t>(width - copy_end) * sizeof(float));
    }
  }
  cached_image = image;
  return copy;
}

// Returns the channels-last copy of the kLanes channels of one block of a
// depthwise call, with zeros around the input and for the lanes past
// out_channels: element (y, x, lane) is at data[(y * source_width + x) *
// kLanes + lane]. cached_key is image * block_count + block of the copy
// already in image_scratch, or -1.
template <int kLanes>
FCNNZOO_INLINE SourceView prepare_depthwise_source(const KernelPlan& plan, int64_t image, int64_t block,
                                                   float* image_scratch, int64_t& cached_key) {
  const ConvReluPoolShape& shape = plan.shape;
  const int64_t width = plan.source_width;
  const SourceView copy{image_scratch, 0, width * kLanes, kLanes};
  const int64_t key = image * plan.block_count + block;
  if (cached_key == key) {
    return copy;
  }

  const int64_t plane = shape.in_height * shape.in_width;
  const int64_t first_channel = block * kLanes;
  const int64_t lanes = min_of(kLanes, shape.in_channels - first_channel);
  const float* input = plan.input + (image * shape.in_channels + first_channel) * plane;
  __builtin_memset(image_scratch, 0, static_cast<size_t>(plan.source_height * width * kLanes) * sizeof(float));
  const int64_t row_end = min_of(shape.padding_height + shape.in_height, plan.source_height);
  const int64_t column_end = min_of(shape.padding_width + shape.in_width, width);
  using Vector = typename VectorOf<kLanes>::Type;
  const int64_t count = column_end - shape.padding_width;
  for (int64_t y = shape.padding_height; y < row_end; ++y) {
    const float* row = input + (y - shape.padding_height) * shape.in_width;
    float* target = image_scratch + (y * width + shape.padding_width) * kLanes;
    int64_t x = 0;
    // Full blocks of kLanes channels x kLanes columns are transposed in registers.
    if (lanes == kLanes) {
      for (; x + kLanes <= count; x += kLanes) {
        Vector rows[kLanes];
#pragma GCC unroll 16
        for (int lane = 0; lane < kLanes; ++lane) {
          rows[lane] = load_vector<Vector>(row + lane * plane + x);
        }
        transpose<kLanes>(rows);
#pragma GCC unroll 16
        for (int index = 0; index < kLanes; ++index) {
          store_vector(target + (x + index) * kLanes, rows[index]);
        }
      }
    }
    for (; x < count; ++x) {
      for (int64_t lane = 0; lane < lanes; ++lane) {
        target[x * kLanes + lane] = row[lane * plane + x];
      }
    }
  }
  cached_key = key;
  return copy;
}

// The start of each scratch region of a worker, in KernelPlan order.
struct WorkerScratch {
  float* image;
  float* transform;
  float* product;
  float* row_max;
  float* pooled;
  float* row_winner;
  float* pooled_index;
};

// Returns the scratch regions of a worker.
FCNNZOO_INLINE WorkerScratch worker_scratch(const KernelPlan& plan, int worker) {
  WorkerScratch regions;
  regions.image = plan.scratch + worker * plan.scratch_stride;
  regions.transform = regions.image + plan.image_scratch_floats;
  regions.product = regions.transform + plan.transform_scratch_floats;
  regions.row_max = regions.product + plan.product_scratch_floats;
  regions.pooled = regions.row_max + plan.row_scratch_floats;
  regions.row_winner = regions.pooled + plan.pooled_scratch_floats;
  regions.pooled_index = regions.row_winner + plan.row_scratch_floats;
  return regions;
}

// The task loop of the direct kernel, instantiated by each
// conv_relu_pool_isa_<isa>.cpp; with kIndices it also writes plan.indices.
template <int kLanes, int kMaxTile, bool kIndices>
FCNNZOO_INLINE void run_direct_tasks(const KernelPlan& plan, int64_t begin, int64_t end, int worker) {
  const WorkerScratch scratch = worker_scratch(plan, worker);
  const int64_t pooled_height = plan.sizes.pooled_height;

  for (int64_t task = begin; task < end; ++task) {
    const int64_t row_group = task % plan.row_group_count;
    const int64_t block = (task / plan.row_group_count) % plan.block_count;
    const int64_t image = task / (plan.row_group_count * plan.block_count);
    const int64_t first_row = row_group * plan.rows_per_task;
    const int64_t last_row = min_of(first_row + plan.rows_per_task, pooled_height);

    if (is_depthwise(plan.shape)) {
      const SourceView source =
          prepare_depthwise_source<kLanes>(plan, image, block, scratch.image, plan.cached_image[worker]);
      if (!convolve_rows<kLanes, kMaxTile, false, kIndices, true>(plan, source, block, first_row, last_row,
                                                                  scratch.row_max, scratch.row_winner)) {
        convolve_rows<kLanes, kMaxTile, true, kIndices, true>(plan, source, block, first_row, last_row,
                                                              scratch.row_max, scratch.row_winner);
      }
    } else {
      const SourceView source = prepare_source(plan, image, scratch.image, plan.cached_image[worker]);
      if (!convolve_rows<kLanes, kMaxTile, false, kIndices, false>(plan, source, block, first_row, last_row,
                                                                   scratch.row_max, scratch.row_winner)) {
        convolve_rows<kLanes, kMaxTile, true, kIndices, false>(plan, source, block, first_row, last_row,
                                                               scratch.row_max, scratch.row_winner);
      }
    }
    pool_rows<kLanes, kIndices>(plan, first_row, last_row, scratch.row_max, scratch.row_winner, scratch.pooled,
                                scratch.pooled_index);
    store_pooled<kLanes>(plan, image, block, first_row, last_row, scratch.pooled);
    if constexpr (kIndices) {
      store_pooled<kLanes, uint8_t>(plan, image, block, first_row, last_row, scratch.pooled_index);
    }
  }
}

}  // namespace
}  // namespace fcnnzoo
