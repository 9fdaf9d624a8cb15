// The body of the Winograd kernel: F(2x2, 3x3) convolution for 3x3 kernels
// with stride 1, fused with a 2x2 max pool of stride 2 and the ReLU.
// Templates over the number of output channels per vector (kLanes) and the
// maximum number of tiles multiplied at once (kMaxTile). Like
// conv_relu_pool_direct_body.h, this file is compiled once per instruction
// set, so it follows the same rules: an anonymous namespace and no calls to
// the standard library.
//
// F(2x2, 3x3) computes a 2x2 tile of outputs from a 4x4 input patch d as
// A^T [U . V] A, where U = G g G^T is the transformed 3x3 kernel g,
// V = B^T d B the transformed patch, "." the element-wise product summed
// over input channels, and
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],
//   G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1],
//   A^T = [1 1 1 0; 0 1 -1 -1].
// That is 16 multiply-adds per tile and input channel instead of 36. The
// tiles start at even rows and columns, so each tile is exactly one pooling
// window and is reduced to one pooled value right after A^T [.] A.
//
// A task covers one image, one row group and one channel block, in four
// steps. First, the image is copied into channels-last order with zero
// padding, and the copy is cached per worker. Second, the 4x4 patches of the
// task's tiles are transformed into [frequency][tile][channel]; the result
// is cached per worker and shared by the channel blocks of one row group.
// Third, for each of the 16 frequencies, the products are summed over the
// input channels, kLanes output channels per vector, like the direct
// kernel's tiles. Last, the output transform, bias, max and ReLU give the
// pooled values.
//
// The transforms subtract values, so an infinite input can turn an output
// that should be inf into NaN (inf - inf). A task whose outputs are not all
// finite is therefore recomputed with the direct kernel's exact path.
#pragma once

#include <cstddef>
#include <cstdint>

#include "conv_relu_pool_direct_body.h"
#include "conv_relu_pool_plan.h"

namespace fcnnzoo {
namespace {

// Number of frequencies of a 4x4 transformed patch.
constexpr int kFrequencies = 16;

// Computes U = G g G^T for every 3x3 kernel g of weights packed by
// pack_weights ([block][in_channel][kh][kw][lane]) and writes it as
// [block][frequency][padded channel][lane], with zeros for the channels from
// in_channels to padded_channels.
template <int kLanes>
FCNNZOO_INLINE void transform_weights(const ConvReluPoolShape& shape, const float* packed_weight,
                                      int64_t padded_channels, float* transformed) {
  using Vector = typename VectorOf<kLanes>::Type;
  const Vector half = Vector{} + 0.5f;
  const Vector zero = {};
  const int64_t block_count = (shape.out_channels + kLanes - 1) / kLanes;
  const int64_t frequency_stride = padded_channels * kLanes;

  for (int64_t block = 0; block < block_count; ++block) {
    for (int64_t channel = 0; channel < padded_channels; ++channel) {
      float* target = transformed + (block * kFrequencies * padded_channels + channel) * kLanes;
      if (channel >= shape.in_channels) {
        for (int frequency = 0; frequency < kFrequencies; ++frequency) {
          store_vector(target + frequency * frequency_stride, zero);
        }
        continue;
      }

      const float* g = packed_weight + ((block * shape.in_channels + channel) * 9) * kLanes;
      Vector w[9];
#pragma GCC unroll 9
      for (int tap = 0; tap < 9; ++tap) {
        w[tap] = load_vector<Vector>(g + tap * kLanes);
      }

      // Rows: G g, four rows of three.
      Vector rows[4][3];
#pragma GCC unroll 3
      for (int j = 0; j < 3; ++j) {
        rows[0][j] = w[j];
        rows[1][j] = half * (w[j] + w[3 + j] + w[6 + j]);
        rows[2][j] = half * (w[j] - w[3 + j] + w[6 + j]);
        rows[3][j] = w[6 + j];
      }

      // Columns: (G g) G^T.
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) {
        float* frequency = target + (4 * i) * frequency_stride;
        store_vector(frequency, rows[i][0]);
        store_vector(frequency + frequency_stride, half * (rows[i][0] + rows[i][1] + rows[i][2]));
        store_vector(frequency + 2 * frequency_stride, half * (rows[i][0] - rows[i][1] + rows[i][2]));
        store_vector(frequency + 3 * frequency_stride, rows[i][2]);
      }
    }
  }
}

// Copies an image into channels-last order [y][x][channel] with the zero
// padding and padded_channels channels (zeros past in_channels), unless the
// worker's copy already contains it. Each input row of kLanes channels is
// staged in kLanes rows of round_up(source_width, kLanes) floats and then
// transposed in kLanes x kLanes blocks.
template <int kLanes>
FCNNZOO_INLINE SourceView prepare_channels_last_source(const KernelPlan& plan, int64_t image, float* target,
                                                       float* staging, int64_t& cached_image) {
  using Vector = typename VectorOf<kLanes>::Type;
  const ConvReluPoolShape& shape = plan.shape;
  const int64_t channels = plan.padded_channels;
  const int64_t pixel_floats = channels;
  const int64_t row_floats = plan.source_width * channels;
  const SourceView copy{target, 1, row_floats, channels};
  if (cached_image == image) {
    return copy;
  }

  const float* input = plan.input + image * shape.in_channels * shape.in_height * shape.in_width;
  const int64_t row_begin = min_of(shape.padding_height, plan.source_height);
  const int64_t row_end = min_of(shape.padding_height + shape.in_height, plan.source_height);
  const int64_t column_begin = min_of(shape.padding_width, plan.source_width);
  const int64_t column_end = min_of(shape.padding_width + shape.in_width, plan.source_width);
  const int64_t count = column_end - column_begin;
  const int64_t staged = (count + kLanes - 1) / kLanes * kLanes;

  // Zero the padding: whole rows above and below, and the columns left and right.
  __builtin_memset(target, 0, static_cast<size_t>(row_begin * row_floats) * sizeof(float));
  __builtin_memset(target + row_end * row_floats, 0,
                   static_cast<size_t>((plan.source_height - row_end) * row_floats) * sizeof(float));
  for (int64_t y = row_begin; y < row_end; ++y) {
    float* row = target + y * row_floats;
    __builtin_memset(row, 0, static_cast<size_t>(column_begin * pixel_floats) * sizeof(float));
    __builtin_memset(row + column_end * pixel_floats, 0,
                     static_cast<size_t>((plan.source_width - column_end) * pixel_floats) * sizeof(float));
  }

  for (int64_t y = row_begin; y < row_end; ++y) {
    const int64_t input_row = y - shape.padding_height;
    for (int64_t channel_begin = 0; channel_begin < channels; channel_begin += kLanes) {
      for (int lane = 0; lane < kLanes; ++lane) {
        float* staged_row = staging + lane * staged;
        const int64_t channel = channel_begin + lane;
        int64_t copied = 0;
        if (channel < shape.in_channels) {
          const float* source_row = input + (channel * shape.in_height + input_row) * shape.in_width;
          __builtin_memcpy(staged_row, source_row + column_begin - shape.padding_width,
                           static_cast<size_t>(count) * sizeof(float));
          copied = count;
        }
        __builtin_memset(staged_row + copied, 0, static_cast<size_t>(staged - copied) * sizeof(float));
      }

      for (int64_t x = 0; x < count; x += kLanes) {
        Vector block[kLanes];
#pragma GCC unroll 16
        for (int lane = 0; lane < kLanes; ++lane) {
          block[lane] = load_vector<Vector>(staging + lane * staged + x);
        }
        transpose<kLanes>(block);
        const int64_t run = min_of(kLanes, count - x);
        float* pixel = target + y * row_floats + (column_begin + x) * pixel_floats + channel_begin;
        for (int64_t index = 0; index < run; ++index) {
          store_vector(pixel + index * pixel_floats, block[index]);
        }
      }
    }
  }
  cached_image = image;
  return copy;
}

// Writes V = B^T d B of the 4x4 patch of every tile in pooled rows
// [first_row, last_row) to transformed as [frequency][tile][channel], tiles
// numbered row by row.
template <int kLanes>
FCNNZOO_INLINE void transform_input(const KernelPlan& plan, const SourceView& source, int64_t first_row,
                                    int64_t last_row, float* __restrict__ transformed) {
  using Vector = typename VectorOf<kLanes>::Type;
  const int64_t channels = plan.padded_channels;
  const int64_t pooled_width = plan.sizes.pooled_width;
  const int64_t frequency_stride = (last_row - first_row) * pooled_width * channels;

  int64_t tile = 0;
  for (int64_t tile_row = first_row; tile_row < last_row; ++tile_row) {
    for (int64_t tile_column = 0; tile_column < pooled_width; ++tile_column, ++tile) {
      const float* patch = source.data + 2 * tile_row * source.row_stride + 2 * tile_column * channels;
      float* target = transformed + tile * channels;
      for (int64_t channel = 0; channel < channels; channel += kLanes) {
        Vector d[4][4];
#pragma GCC unroll 4
        for (int i = 0; i < 4; ++i) {
#pragma GCC unroll 4
          for (int j = 0; j < 4; ++j) {
            d[i][j] = load_vector<Vector>(patch + i * source.row_stride + j * channels + channel);
          }
        }

        // Rows: B^T d.
        Vector rows[4][4];
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) {
          rows[0][j] = d[0][j] - d[2][j];
          rows[1][j] = d[1][j] + d[2][j];
          rows[2][j] = d[2][j] - d[1][j];
          rows[3][j] = d[1][j] - d[3][j];
        }

        // Columns: (B^T d) B.
#pragma GCC unroll 4
        for (int i = 0; i < 4; ++i) {
          float* frequency = target + (4 * i) * frequency_stride + channel;
          store_vector(frequency, rows[i][0] - rows[i][2]);
          store_vector(frequency + frequency_stride, rows[i][1] + rows[i][2]);
          store_vector(frequency + 2 * frequency_stride, rows[i][2] - rows[i][1]);
          store_vector(frequency + 3 * frequency_stride, rows[i][1] - rows[i][3]);
        }
      }
    }
  }
}

// Sums, over the first channel_count channels, the products of kWidth
// transformed tiles (channel_stride floats apart) with the transformed
// weights of one frequency and one channel block, and stores the kWidth sums
// with a stride of kFrequencies vectors.
template <int kLanes, int kWidth>
FCNNZOO_INLINE void multiply_tiles(const float* __restrict__ weights, const float* __restrict__ transformed,
                                   int64_t channel_count, int64_t channel_stride, float* __restrict__ products) {
  using Vector = typename VectorOf<kLanes>::Type;
  Vector sums[kWidth];
#pragma GCC unroll 16
  for (int t = 0; t < kWidth; ++t) {
    sums[t] = Vector{};
  }

  for (int64_t channel = 0; channel < channel_count; ++channel) {
    const Vector weight = load_vector<Vector>(weights + channel * kLanes);
    const float* tap = transformed + channel;
#pragma GCC unroll 16
    for (int t = 0; t < kWidth; ++t) {
      sums[t] += weight * tap[t * channel_stride];
    }
  }

#pragma GCC unroll 16
  for (int t = 0; t < kWidth; ++t) {
    store_vector(products + t * kFrequencies * kLanes, sums[t]);
  }
}

// Runs multiply_tiles with the compile-time width equal to width, which
// must be in [1, kWidth].
template <int kLanes, int kWidth>
FCNNZOO_INLINE void multiply_tiles_of_width(int64_t width, const float* weights, const float* transformed,
                                            int64_t channel_count, int64_t channel_stride, float* products) {
  if constexpr (kWidth > 1) {
    if (width < kWidth) {
      multiply_tiles_of_width<kLanes, kWidth - 1>(width, weights, transformed, channel_count, channel_stride,
                                                  products);
      return;
    }
  }
  multiply_tiles<kLanes, kWidth>(weights, transformed, channel_count, channel_stride, products);
}

// Applies A^T [.] A to the products of every tile, adds the bias and writes
// relu(max of the 2x2 outputs) to pooled. Returns false if an output is NaN
// or infinite, in which case the caller must recompute the task exactly.
// With kIndices, pooled_index receives the window position of each maximum:
// 0 to 3 for top left, top right, bottom left and bottom right, the first
// one winning a tie.
template <int kLanes, bool kIndices>
FCNNZOO_INLINE bool finish_tiles(const float* __restrict__ products, int64_t tiles,
                                 const typename VectorOf<kLanes>::Type& bias, float* __restrict__ pooled,
                                 float* __restrict__ pooled_index) {
  using Vector = typename VectorOf<kLanes>::Type;
  const Vector zero = {};
  Vector probe = {};

  for (int64_t tile = 0; tile < tiles; ++tile) {
    const float* tile_products = products + tile * kFrequencies * kLanes;
    Vector m[4][4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) {
        m[i][j] = load_vector<Vector>(tile_products + (4 * i + j) * kLanes);
      }
    }

    // Rows: A^T m, two rows of four.
    Vector top[4];
    Vector bottom[4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      top[j] = m[0][j] + m[1][j] + m[2][j];
      bottom[j] = m[1][j] - m[2][j] - m[3][j];
    }

    // Columns: (A^T m) A, the 2x2 outputs without bias.
    const Vector top_left = top[0] + top[1] + top[2];
    const Vector top_right = top[1] - top[2] - top[3];
    const Vector bottom_left = bottom[0] + bottom[1] + bottom[2];
    const Vector bottom_right = bottom[1] - bottom[2] - bottom[3];
    probe += (top_left + top_right) + (bottom_left + bottom_right);

    // max(a + bias, b + bias) == max(a, b) + bias, also after rounding.
    if constexpr (!kIndices) {
      const Vector maximum = fast_max(fast_max(top_left, top_right), fast_max(bottom_left, bottom_right)) + bias;
      store_vector(pooled + tile * kLanes, fast_max(maximum, zero));
    } else {
      // The transforms round the four outputs differently, so outputs that
      // are equal in exact arithmetic (over a constant patch of the input,
      // say) may differ in their last bits, and a later one may win where
      // max_pool2d over a direct convolution would pick the first. The
      // index still names a maximum of the values this kernel computed.
      Vector maximum = top_left;
      Vector index = zero;
      const Vector outputs[3] = {top_right, bottom_left, bottom_right};
#pragma GCC unroll 3
      for (int position = 0; position < 3; ++position) {
        const auto take = outputs[position] > maximum;
        maximum = select_lanes(take, outputs[position], maximum);
        index = select_lanes(take, zero + static_cast<float>(position + 1), index);
      }
      store_vector(pooled + tile * kLanes, fast_max(maximum + bias, zero));
      store_vector(pooled_index + tile * kLanes, index);
    }
  }

  // x - x is 0 for every finite x and NaN for inf and NaN.
  const Vector difference = probe - probe;
  for (int lane = 0; lane < kLanes; ++lane) {
    if (difference[lane] != 0.0f) {
      return false;
    }
  }
  return true;
}

// The task loop of the Winograd kernel, instantiated by each
// conv_relu_pool_isa_<isa>.cpp; with kIndices it also writes plan.indices.
template <int kLanes, int kMaxTile, bool kIndices>
FCNNZOO_INLINE void run_winograd_tasks(const KernelPlan& plan, int64_t begin, int64_t end, int worker) {
  using Vector = typename VectorOf<kLanes>::Type;
  const WorkerScratch scratch = worker_scratch(plan, worker);
  const int64_t pooled_height = plan.sizes.pooled_height;
  const int64_t pooled_width = plan.sizes.pooled_width;
  const int64_t channels = plan.padded_channels;

  for (int64_t task = begin; task < end; ++task) {
    const int64_t block = task % plan.block_count;
    const int64_t image_row_group = task / plan.block_count;
    const int64_t row_group = image_row_group % plan.row_group_count;
    const int64_t image = image_row_group / plan.row_group_count;
    const int64_t first_row = row_group * plan.rows_per_task;
    const int64_t last_row = min_of(first_row + plan.rows_per_task, pooled_height);
    const int64_t tiles = (last_row - first_row) * pooled_width;

    // The products region is free until the multiplications, so it stages the copy.
    const SourceView source = prepare_channels_last_source<kLanes>(plan, image, scratch.image, scratch.product,
                                                                   plan.cached_image[worker]);
    if (plan.cached_transform[worker] != image_row_group) {
      transform_input<kLanes>(plan, source, first_row, last_row, scratch.transform);
      plan.cached_transform[worker] = image_row_group;
    }

    const int64_t group_count = (tiles + kMaxTile - 1) / kMaxTile;
    for (int frequency = 0; frequency < kFrequencies; ++frequency) {
      const float* weights = plan.winograd_weight + ((block * kFrequencies + frequency) * channels) * kLanes;
      const float* transformed = scratch.transform + frequency * tiles * channels;
      for (int64_t group = 0; group < group_count; ++group) {
        const int64_t tile_begin = group * tiles / group_count;
        const int64_t tile_end = (group + 1) * tiles / group_count;
        // The padded channels have zero weights, so the sums skip them.
        multiply_tiles_of_width<kLanes, kMaxTile>(tile_end - tile_begin, weights, transformed + tile_begin * channels,
                                                  plan.shape.in_channels, channels,
                                                  scratch.product + (tile_begin * kFrequencies + frequency) * kLanes);
      }
    }

    const Vector bias = load_vector<Vector>(plan.packed_bias + block * kLanes);
    if (!finish_tiles<kLanes, kIndices>(scratch.product, tiles, bias, scratch.pooled, scratch.pooled_index)) {
      convolve_rows<kLanes, kMaxTile, true, kIndices, false>(plan, source, block, first_row, last_row, scratch.row_max,
                                                      scratch.row_winner);
      pool_rows<kLanes, kIndices>(plan, first_row, last_row, scratch.row_max, scratch.row_winner, scratch.pooled,
                                  scratch.pooled_index);
    }
    store_pooled<kLanes>(plan, image, block, first_row, last_row, scratch.pooled);
    if constexpr (kIndices) {
      store_pooled<kLanes, uint8_t>(plan, image, block, first_row, last_row, scratch.pooled_index);
    }
  }
}

}  // namespace
}  // namespace fcnnzoo
