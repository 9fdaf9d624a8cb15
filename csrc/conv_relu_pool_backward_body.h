// The body of the fused backward: from the gradient of the pooled output and
// the indices the forward saved, the gradients of the input, the weight and
// the bias, without building the gradient of the whole convolution output.
//
// Only the convolution output that won a pooling window with a positive
// value receives a gradient (the max pool sends it there, and the ReLU
// passes it because the value is positive), so a 2x2 pool leaves at most one
// nonzero in four. Two layouts use that, chosen by the driver:
//
// - Sparse, for many input channels: the image and its gradient are kept
//   channels-last, so the patch row under kernel row kh of a winner at
//   (y, x) is kernel_width * in_channels consecutive floats. Each winner
//   adds gradient * patch row to the weight gradient and gradient * weight
//   row to the input gradient, as vector loops over those floats.
// - Dense, for few input channels, where such rows are too short for
//   vectors: the winners of one (image, output channel) plane are scattered
//   into a zeroed plane buffer that stays in the cache, and the weight and
//   input gradients are correlations of that plane with the image, vectors
//   running along the rows when the stride is 1.
//
// Like the other bodies, this file is compiled once per instruction set:
// an anonymous namespace and no calls to the standard library.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

#include "conv_relu_pool_direct_body.h"
#include "conv_relu_pool_plan.h"

namespace fcnnzoo {
namespace {

// Adds scale * source[0, count) to target[0, count).
template <int kLanes>
FCNNZOO_INLINE void add_scaled(float* __restrict__ target, const float* __restrict__ source, float scale,
                               int64_t count) {
  using Vector = typename VectorOf<kLanes>::Type;
  int64_t index = 0;
  for (; index + kLanes <= count; index += kLanes) {
    store_vector(target + index,
                 load_vector<Vector>(target + index) + load_vector<Vector>(source + index) * scale);
  }
  for (; index < count; ++index) {
    target[index] += source[index] * scale;
  }
}

// Copies image of (channels, height, width) into the zeroed buffer of
// (rows, columns) positions, at offset (top, left): channels-last when
// channels_last is set, else channel planes.
FCNNZOO_INLINE void copy_into_padded(const float* image, const BackwardPlan& plan, float* buffer) {
  const ConvReluPoolShape& shape = plan.shape;
  __builtin_memset(buffer, 0, static_cast<size_t>(plan.image_floats) * sizeof(float));
  for (int64_t channel = 0; channel < shape.in_channels; ++channel) {
    for (int64_t y = 0; y < shape.in_height; ++y) {
      const float* row = image + (channel * shape.in_height + y) * shape.in_width;
      const int64_t padded_row = y + shape.padding_height;
      if (plan.sparse) {
        float* target = buffer + (padded_row * plan.padded_width + shape.padding_width) * shape.in_channels + channel;
        for (int64_t x = 0; x < shape.in_width; ++x) {
          target[x * shape.in_channels] = row[x];
        }
      } else {
        float* target = buffer + (channel * plan.padded_height + padded_row) * plan.padded_width + shape.padding_width;
        __builtin_memcpy(target, row, static_cast<size_t>(shape.in_width) * sizeof(float));
      }
    }
  }
}

// Copies the interior of a padded input gradient back into the NCHW input gradient.
FCNNZOO_INLINE void copy_from_padded(const float* buffer, const BackwardPlan& plan, float* image) {
  const ConvReluPoolShape& shape = plan.shape;
  for (int64_t channel = 0; channel < shape.in_channels; ++channel) {
    for (int64_t y = 0; y < shape.in_height; ++y) {
      float* row = image + (channel * shape.in_height + y) * shape.in_width;
      const int64_t padded_row = y + shape.padding_height;
      if (plan.sparse) {
        const float* source =
            buffer + (padded_row * plan.padded_width + shape.padding_width) * shape.in_channels + channel;
        for (int64_t x = 0; x < shape.in_width; ++x) {
          row[x] = source[x * shape.in_channels];
        }
      } else {
        const float* source =
            buffer + (channel * plan.padded_height + padded_row) * plan.padded_width + shape.padding_width;
        __builtin_memcpy(row, source, static_cast<size_t>(shape.in_width) * sizeof(float));
      }
    }
  }
}

// Calls visit(row, column, gradient, positive) for the winner of every
// pooling window of the plane of one image and output channel, with the
// convolution output's coordinates, and with gradient zero unless positive,
// that is unless the pooled value is positive or NaN. Calling for every window and
// leaving the choice to arithmetic avoids a branch that the processor would
// mispredict for about half of the windows.
template <class Visit>
FCNNZOO_INLINE void for_each_winner(const BackwardPlan& plan, int64_t plane, Visit&& visit) {
  const ConvReluPoolShape& shape = plan.shape;
  const ConvReluPoolSizes& sizes = plan.sizes;
  const int64_t pooled_plane = sizes.pooled_height * sizes.pooled_width;
  const float* grad_output = plan.grad_output + plane * pooled_plane;
  const float* output = plan.output + plane * pooled_plane;
  const uint8_t* indices = plan.indices + plane * pooled_plane;
  for (int64_t py = 0; py < sizes.pooled_height; ++py) {
    for (int64_t px = 0; px < sizes.pooled_width; ++px) {
      const int64_t position = py * sizes.pooled_width + px;
      // PyTorch's ReLU backward blocks the gradient where its result is
      // <= 0, which lets it pass for NaN.
      const bool positive = !(output[position] <= 0.0f);
      // A table instead of index / width and index % width, whose integer
      // divisions would cost more than the rest of the loop.
      const int64_t index = indices[position];
      visit(py * shape.pool_stride_height + plan.window_row[index],
            px * shape.pool_stride_width + plan.window_column[index], positive ? grad_output[position] : 0.0f,
            positive);
    }
  }
}

// The sum of the gradients of the plane's positive or NaN pooled values:
// the gradient of the bias.
template <int kLanes>
FCNNZOO_INLINE float bias_gradient(const BackwardPlan& plan, int64_t plane) {
  using Vector = typename VectorOf<kLanes>::Type;
  using Mask = typename VectorOf<kLanes>::Mask;
  const int64_t count = plan.sizes.pooled_height * plan.sizes.pooled_width;
  const float* grad_output = plan.grad_output + plane * count;
  const float* output = plan.output + plane * count;
  const Vector zero = {};
  Vector sums = {};
  int64_t position = 0;
  for (; position + kLanes <= count; position += kLanes) {
    const Mask blocked = load_vector<Vector>(output + position) <= zero;
    sums += select_lanes(blocked, zero, load_vector<Vector>(grad_output + position));
  }
  float sum = 0.0f;
  for (; position < count; ++position) {
    sum += output[position] <= 0.0f ? 0.0f : grad_output[position];
  }
  for (int lane = 0; lane < kLanes; ++lane) {
    sum += sums[lane];
  }
  return sum;
}

// Scratch memory of the sparse layout for one image: the winners of one
// plane, and every winner of the image as an entry, sorted by position.
struct SparseScratch {
  int32_t* offsets;
  float* gradients;
  int32_t* entry_position;
  int32_t* entry_channel;
  float* entry_gradient;
  int32_t* sorted_channel;
  float* sorted_gradient;
  int32_t* position_start;
};

// Adds to kCount vectors at target the sum over the sorted entries [first,
// last) of gradient times the weights at weights + channel * channel_stride.
// kCount independent sums keep that many multiply-adds in flight.
template <int kLanes, int kCount>
FCNNZOO_INLINE void add_weighted_rows(float* target, const float* weights, int64_t channel_stride,
                                      const SparseScratch& scratch, int64_t first, int64_t last) {
  using Vector = typename VectorOf<kLanes>::Type;
  Vector sums[kCount] = {};
  for (int64_t entry = first; entry < last; ++entry) {
    const float* weight_row = weights + scratch.sorted_channel[entry] * channel_stride;
    const float gradient = scratch.sorted_gradient[entry];
#pragma GCC unroll 4
    for (int part = 0; part < kCount; ++part) {
      sums[part] += load_vector<Vector>(weight_row + part * kLanes) * gradient;
    }
  }
#pragma GCC unroll 4
  for (int part = 0; part < kCount; ++part) {
    float* slot = target + part * kLanes;
    store_vector(slot, load_vector<Vector>(slot) + sums[part]);
  }
}

// Adds to kCount vectors at target the sum over the winners [0, count) of
// gradient times the image values at image + offset.
template <int kLanes, int kCount>
FCNNZOO_INLINE void add_patch_rows(float* target, const float* image, const int32_t* offsets,
                                   const float* gradients, int64_t count) {
  using Vector = typename VectorOf<kLanes>::Type;
  Vector sums[kCount] = {};
  for (int64_t winner = 0; winner < count; ++winner) {
    const float* patch = image + offsets[winner];
    const float gradient = gradients[winner];
#pragma GCC unroll 4
    for (int part = 0; part < kCount; ++part) {
      sums[part] += load_vector<Vector>(patch + part * kLanes) * gradient;
    }
  }
#pragma GCC unroll 4
  for (int part = 0; part < kCount; ++part) {
    float* slot = target + part * kLanes;
    store_vector(slot, load_vector<Vector>(slot) + sums[part]);
  }
}

// Sparse layout: adds the gradients of one image to the worker's weight
// accumulators ([out_channel][kh][kw][in_channel], then the bias) and its
// padded channels-last input gradient.
//
// The weight gradient runs over the output channels: their winners are
// listed first, so that each vector of accumulators stays in a register
// while it runs over them. The input gradient runs over the convolution
// positions instead: the winners of every output channel at one position
// add their gradient times their weights in registers, and the sum is added
// to the input gradient once per position rather than once per winner.
template <int kLanes>
FCNNZOO_INLINE void backward_image_sparse(const BackwardPlan& plan, int64_t image, const float* padded_image,
                                          float* grad_image, float* weight_sums, const SparseScratch& scratch) {
  using Vector = typename VectorOf<kLanes>::Type;
  const ConvReluPoolShape& shape = plan.shape;
  const ConvReluPoolSizes& sizes = plan.sizes;
  const int64_t row_floats = shape.kernel_width * shape.in_channels;
  const int64_t kernel_floats = shape.kernel_height * row_floats;
  const int64_t image_row_floats = plan.padded_width * shape.in_channels;
  const int64_t vector_end = row_floats / kLanes * kLanes;
  const int64_t positions = sizes.conv_height * sizes.conv_width;
  float* bias_sums = weight_sums + shape.out_channels * kernel_floats;
  int32_t* offsets = scratch.offsets;
  float* gradients = scratch.gradients;
  int64_t entries = 0;

  for (int64_t out_channel = 0; out_channel < shape.out_channels; ++out_channel) {
    const int64_t plane = image * shape.out_channels + out_channel;
    bias_sums[out_channel] += bias_gradient<kLanes>(plan, plane);
    // Every window writes a slot, and only a positive one keeps it.
    int64_t count = 0;
    for_each_winner(plan, plane, [&](int64_t row, int64_t column, float gradient, bool positive) {
      offsets[count] = static_cast<int32_t>(row * shape.stride_height * image_row_floats +
                                            column * shape.stride_width * shape.in_channels);
      gradients[count] = gradient;
      scratch.entry_position[entries] = static_cast<int32_t>(row * sizes.conv_width + column);
      scratch.entry_channel[entries] = static_cast<int32_t>(out_channel);
      scratch.entry_gradient[entries] = gradient;
      const int64_t kept = positive ? 1 : 0;
      count += kept;
      entries += kept;
    });
    if (count == 0 || !plan.need_weight) {
      continue;
    }

    float* weight_sum = weight_sums + out_channel * kernel_floats;
    for (int64_t kh = 0; kh < shape.kernel_height; ++kh) {
      const float* image_rows = padded_image + kh * image_row_floats;
      float* sum_row = weight_sum + kh * row_floats;
      int64_t index = 0;
      for (; index + 4 * kLanes <= row_floats; index += 4 * kLanes) {
        add_patch_rows<kLanes, 4>(sum_row + index, image_rows + index, offsets, gradients, count);
      }
      if (index + 2 * kLanes <= row_floats) {
        add_patch_rows<kLanes, 2>(sum_row + index, image_rows + index, offsets, gradients, count);
        index += 2 * kLanes;
      }
      if (index + kLanes <= row_floats) {
        add_patch_rows<kLanes, 1>(sum_row + index, image_rows + index, offsets, gradients, count);
      }
      for (int64_t index = vector_end; index < row_floats; ++index) {
        for (int64_t winner = 0; winner < count; ++winner) {
          sum_row[index] += image_rows[offsets[winner] + index] * gradients[winner];
        }
      }
    }
  }
  if (grad_image == nullptr || entries == 0) {
    return;
  }

  // Sort the entries by position (a counting sort keeps the channel order).
  int32_t* start = scratch.position_start;
  for (int64_t position = 0; position <= positions; ++position) {
    start[position] = 0;
  }
  for (int64_t entry = 0; entry < entries; ++entry) {
    ++start[scratch.entry_position[entry] + 1];
  }
  for (int64_t position = 0; position < positions; ++position) {
    start[position + 1] += start[position];
  }
  for (int64_t entry = 0; entry < entries; ++entry) {
    const int32_t slot = start[scratch.entry_position[entry]]++;
    scratch.sorted_channel[slot] = scratch.entry_channel[entry];
    scratch.sorted_gradient[slot] = scratch.entry_gradient[entry];
  }
  // The increments moved each start to the next position's start.
  for (int64_t position = positions; position > 0; --position) {
    start[position] = start[position - 1];
  }
  start[0] = 0;

  for (int64_t position = 0; position < positions; ++position) {
    const int64_t first = start[position];
    const int64_t last = start[position + 1];
    if (first == last) {
      continue;
    }
    const int64_t row = position / sizes.conv_width;
    const int64_t column = position % sizes.conv_width;
    float* patch = grad_image + row * shape.stride_height * image_row_floats +
                   column * shape.stride_width * shape.in_channels;
    for (int64_t kh = 0; kh < shape.kernel_height; ++kh) {
      float* target = patch + kh * image_row_floats;
      const float* weights = plan.weight + kh * row_floats;
      int64_t index = 0;
      for (; index + 4 * kLanes <= row_floats; index += 4 * kLanes) {
        add_weighted_rows<kLanes, 4>(target + index, weights + index, kernel_floats, scratch, first, last);
      }
      if (index + 2 * kLanes <= row_floats) {
        add_weighted_rows<kLanes, 2>(target + index, weights + index, kernel_floats, scratch, first, last);
        index += 2 * kLanes;
      }
      if (index + kLanes <= row_floats) {
        add_weighted_rows<kLanes, 1>(target + index, weights + index, kernel_floats, scratch, first, last);
        index += kLanes;
      }
      for (; index < row_floats; ++index) {
        float sum = 0.0f;
        for (int64_t entry = first; entry < last; ++entry) {
          sum += weights[scratch.sorted_channel[entry] * kernel_floats + index] * scratch.sorted_gradient[entry];
        }
        target[index] += sum;
      }
    }
  }
}

// Adds to sums[kw], for kw < kKernelWidth, the correlation of the gradient
// plane with the image rows starting at image: the weight gradient of one
// input channel and kernel row, for stride-1 rows. Two sets of partial sums
// keep more multiply-adds in flight.
template <int kLanes, int kKernelWidth>
FCNNZOO_INLINE void correlate_rows(const BackwardPlan& plan, const float* gradient_plane, const float* image,
                                   float* sums) {
  using Vector = typename VectorOf<kLanes>::Type;
  const int64_t plane_width = plan.plane_width;
  const int64_t image_row_step = plan.shape.stride_height * plan.padded_width;
  Vector even[kKernelWidth] = {};
  Vector odd[kKernelWidth] = {};
  for (int64_t y = 0; y < plan.sizes.conv_height; ++y) {
    const float* gradient_row = gradient_plane + y * plane_width;
    const float* image_row = image + y * image_row_step;
    int64_t x = 0;
    for (; x + 2 * kLanes <= plane_width; x += 2 * kLanes) {
      const Vector first = load_vector<Vector>(gradient_row + x);
      const Vector second = load_vector<Vector>(gradient_row + x + kLanes);
#pragma GCC unroll 8
      for (int kw = 0; kw < kKernelWidth; ++kw) {
        even[kw] += first * load_vector<Vector>(image_row + x + kw);
        odd[kw] += second * load_vector<Vector>(image_row + x + kLanes + kw);
      }
    }
    if (x < plane_width) {
      const Vector first = load_vector<Vector>(gradient_row + x);
#pragma GCC unroll 8
      for (int kw = 0; kw < kKernelWidth; ++kw) {
        even[kw] += first * load_vector<Vector>(image_row + x + kw);
      }
    }
  }
#pragma GCC unroll 8
  for (int kw = 0; kw < kKernelWidth; ++kw) {
    const Vector total = even[kw] + odd[kw];
    float sum = 0.0f;
    for (int lane = 0; lane < kLanes; ++lane) {
      sum += total[lane];
    }
    sums[kw] += sum;
  }
}

// Runs correlate_rows with kKernelWidth equal to kernel_width when it is at
// most kMax, and returns false otherwise.
template <int kLanes, int kMax>
FCNNZOO_INLINE bool correlate_rows_of_width(int64_t kernel_width, const BackwardPlan& plan,
                                            const float* gradient_plane, const float* image, float* sums) {
  if constexpr (kMax > 0) {
    if (kernel_width == kMax) {
      correlate_rows<kLanes, kMax>(plan, gradient_plane, image, sums);
      return true;
    }
    return correlate_rows_of_width<kLanes, kMax - 1>(kernel_width, plan, gradient_plane, image, sums);
  }
  return false;
}

// Returns the lanes of first and second interleaved: first[0], second[0],
// first[1], ..., from lane kHalf * kLanes / 2 of each on.
template <int kLanes, int kHalf, size_t... kIndex>
FCNNZOO_INLINE typename VectorOf<kLanes>::Type interleave(const typename VectorOf<kLanes>::Type& first,
                                                          const typename VectorOf<kLanes>::Type& second,
                                                          std::index_sequence<kIndex...>) {
  return shuffle_lanes<kLanes, int(kIndex / 2 + kHalf * kLanes / 2 + (kIndex % 2) * kLanes)...>(first, second);
}

// Writes the gradients of a plane's winners into the zeroed gradient plane
// with vectors, for the common 2x2 pool with stride 2: each pooled row
// covers two convolution rows, and the four window positions become two
// interleaved row pairs. Needs plane rows of a whole number of 2 * kLanes
// floats. Returns false, writing nothing, for other pools.
template <int kLanes>
FCNNZOO_INLINE bool scatter_pairs(const BackwardPlan& plan, int64_t plane, float* gradient_plane) {
  using Vector = typename VectorOf<kLanes>::Type;
  using Mask = typename VectorOf<kLanes>::Mask;
  typedef uint8_t Bytes __attribute__((vector_size(kLanes)));
  const ConvReluPoolShape& shape = plan.shape;
  const ConvReluPoolSizes& sizes = plan.sizes;
  if (shape.pool_kernel_height != 2 || shape.pool_kernel_width != 2 || shape.pool_stride_height != 2 ||
      shape.pool_stride_width != 2 || plan.plane_width % (2 * kLanes) != 0 ||
      2 * sizes.pooled_height > sizes.conv_height) {
    // A last window that ceil_mode clips at the bottom has no second row.
    return false;
  }
  const int64_t pooled_width = sizes.pooled_width;
  const int64_t pooled_plane = sizes.pooled_height * pooled_width;
  const float* grad_output = plan.grad_output + plane * pooled_plane;
  const float* output = plan.output + plane * pooled_plane;
  const uint8_t* indices = plan.indices + plane * pooled_plane;
  const Vector zero = {};
  const Mask ones = Mask{} + 1;
  const Mask twos = Mask{} + 2;
  const Mask threes = Mask{} + 3;
  const auto lanes = std::make_index_sequence<kLanes>{};

  for (int64_t py = 0; py < sizes.pooled_height; ++py) {
    float* top = gradient_plane + 2 * py * plan.plane_width;
    float* bottom = top + plan.plane_width;
    for (int64_t px = 0; px < pooled_width; px += kLanes) {
      // The last group of a row may be partial: its missing lanes read as
      // zero gradients, and the plane's rows are long enough for all lanes.
      const int64_t position = py * pooled_width + px;
      const int64_t count = min_of(kLanes, pooled_width - px);
      float output_lanes[kLanes] = {};
      float gradient_lanes[kLanes] = {};
      Bytes bytes = {};
      __builtin_memcpy(output_lanes, output + position, static_cast<size_t>(count) * sizeof(float));
      __builtin_memcpy(gradient_lanes, grad_output + position, static_cast<size_t>(count) * sizeof(float));
      __builtin_memcpy(&bytes, indices + position, static_cast<size_t>(count));
      // As in for_each_winner, only positive or NaN outputs pass a gradient.
      const Mask blocked = load_vector<Vector>(output_lanes) <= zero;
      const Vector gradient = select_lanes(blocked, zero, load_vector<Vector>(gradient_lanes));
      const Mask index = __builtin_convertvector(bytes, Mask);
      const Vector top_left = select_lanes(index == Mask{}, gradient, zero);
      const Vector top_right = select_lanes(index == ones, gradient, zero);
      const Vector bottom_left = select_lanes(index == twos, gradient, zero);
      const Vector bottom_right = select_lanes(index == threes, gradient, zero);
      store_vector(top + 2 * px, interleave<kLanes, 0>(top_left, top_right, lanes));
      store_vector(top + 2 * px + kLanes, interleave<kLanes, 1>(top_left, top_right, lanes));
      store_vector(bottom + 2 * px, interleave<kLanes, 0>(bottom_left, bottom_right, lanes));
      store_vector(bottom + 2 * px + kLanes, interleave<kLanes, 1>(bottom_left, bottom_right, lanes));
    }
  }
  return true;
}

// Dense layout: the same for one image, with weight accumulators in the
// weight's own layout ([out_channel][in_channel][kh][kw], then the bias) and
// channel planes for the image and its gradient.
template <int kLanes>
FCNNZOO_INLINE void backward_image_dense(const BackwardPlan& plan, int64_t image, const float* padded_image,
                                         float* grad_image, float* weight_sums, float* gradient_plane) {
  using Vector = typename VectorOf<kLanes>::Type;
  const ConvReluPoolShape& shape = plan.shape;
  const ConvReluPoolSizes& sizes = plan.sizes;
  const int64_t kernel_floats = shape.in_channels * shape.kernel_height * shape.kernel_width;
  float* bias_sums = weight_sums + shape.out_channels * kernel_floats;
  const int64_t plane_width = plan.plane_width;
  const int64_t conv_height = sizes.conv_height;
  const bool vector_rows = shape.stride_width == 1;
  const int64_t channel_floats = plan.padded_height * plan.padded_width;

  for (int64_t out_channel = 0; out_channel < shape.out_channels; ++out_channel) {
    const int64_t plane = image * shape.out_channels + out_channel;
    __builtin_memset(gradient_plane, 0, static_cast<size_t>(conv_height * plane_width) * sizeof(float));
    bias_sums[out_channel] += bias_gradient<kLanes>(plan, plane);
    if (!scatter_pairs<kLanes>(plan, plane, gradient_plane)) {
      for_each_winner(plan, plane, [&](int64_t row, int64_t column, float gradient, bool /*positive*/) {
        gradient_plane[row * plane_width + column] += gradient;
      });
    }

    float* weight_sum = weight_sums + out_channel * kernel_floats;
    const float* weight = plan.weight + out_channel * kernel_floats;
    for (int64_t channel = 0; channel < shape.in_channels; ++channel) {
      const float* channel_image = padded_image + channel * channel_floats;
      float* channel_grad = grad_image != nullptr ? grad_image + channel * channel_floats : nullptr;
      for (int64_t kh = 0; kh < shape.kernel_height; ++kh) {
        const int64_t row_tap = (channel * shape.kernel_height + kh) * shape.kernel_width;
        const bool weight_done =
            plan.need_weight && vector_rows &&
            correlate_rows_of_width<kLanes, 7>(shape.kernel_width, plan, gradient_plane,
                                               channel_image + kh * plan.padded_width, weight_sum + row_tap);
        if (weight_done && channel_grad == nullptr) {
          continue;
        }
        for (int64_t kw = 0; kw < shape.kernel_width; ++kw) {
          const int64_t tap = row_tap + kw;
          const float tap_weight = weight[tap];
          const bool need_weight = plan.need_weight && !weight_done;
          Vector sums = {};
          float sum = 0.0f;
          for (int64_t y = 0; y < conv_height; ++y) {
            const float* gradient_row = gradient_plane + y * plane_width;
            const int64_t image_offset = (y * shape.stride_height + kh) * plan.padded_width + kw;
            if (vector_rows) {
              // The plane rows are padded with zeros to whole vectors, and
              // the image rows are long enough to read past them.
              for (int64_t x = 0; x < plane_width; x += kLanes) {
                const Vector gradient = load_vector<Vector>(gradient_row + x);
                if (need_weight) {
                  sums += gradient * load_vector<Vector>(channel_image + image_offset + x);
                }
                if (channel_grad != nullptr) {
                  float* target = channel_grad + image_offset + x;
                  store_vector(target, load_vector<Vector>(target) + gradient * tap_weight);
                }
              }
            } else {
              for (int64_t x = 0; x < sizes.conv_width; ++x) {
                const float gradient = gradient_row[x];
                const int64_t offset = image_offset + x * shape.stride_width;
                if (need_weight) {
                  sum += gradient * channel_image[offset];
                }
                if (channel_grad != nullptr) {
                  channel_grad[offset] += gradient * tap_weight;
                }
              }
            }
          }
          if (need_weight) {
            for (int lane = 0; lane < kLanes; ++lane) {
              sum += sums[lane];
            }
            weight_sum[tap] += sum;
          }
        }
      }
    }
  }
}

// Whether values[0, count) holds no NaN and no infinity: x - x is 0 for
// every finite x and NaN otherwise.
template <int kLanes>
FCNNZOO_INLINE bool all_finite(const float* values, int64_t count) {
  using Vector = typename VectorOf<kLanes>::Type;
  Vector probe = {};
  int64_t index = 0;
  for (; index + kLanes <= count; index += kLanes) {
    const Vector value = load_vector<Vector>(values + index);
    probe += value - value;
  }
  float tail = 0.0f;
  for (; index < count; ++index) {
    tail += values[index] - values[index];
  }
  for (int lane = 0; lane < kLanes; ++lane) {
    tail += probe[lane];
  }
  return tail == 0.0f;
}

// Computes the gradients of the images [begin, end), adding into the weight
// and bias accumulators of scratch slot slot.
template <int kLanes>
FCNNZOO_INLINE void backward_images(const BackwardPlan& plan, int64_t begin, int64_t end, int64_t slot) {
  const ConvReluPoolShape& shape = plan.shape;
  float* scratch = plan.scratch + slot * plan.scratch_stride;
  float* weight_sums = scratch;
  float* padded_image = weight_sums + plan.weight_sum_floats;
  float* grad_image = padded_image + plan.image_floats;
  float* gradient_plane = grad_image + plan.image_floats;
  // The sparse layout keeps its winner lists where the dense one keeps its plane.
  SparseScratch sparse;
  sparse.offsets = reinterpret_cast<int32_t*>(gradient_plane);
  sparse.gradients = gradient_plane + plan.winner_floats;
  sparse.entry_position = reinterpret_cast<int32_t*>(sparse.gradients + plan.winner_floats);
  sparse.entry_channel = sparse.entry_position + plan.entry_floats;
  sparse.entry_gradient = reinterpret_cast<float*>(sparse.entry_channel + plan.entry_floats);
  sparse.sorted_channel = reinterpret_cast<int32_t*>(sparse.entry_gradient + plan.entry_floats);
  sparse.sorted_gradient = reinterpret_cast<float*>(sparse.sorted_channel + plan.entry_floats);
  sparse.position_start = reinterpret_cast<int32_t*>(sparse.sorted_gradient + plan.entry_floats);
  const int64_t image_size = shape.in_channels * shape.in_height * shape.in_width;

  for (int64_t image = begin; image < end; ++image) {
    const float* input = plan.input + image * image_size;
    if (!all_finite<kLanes>(input, image_size)) {
      // The caller recomputes the whole call on the dense path.
      plan.non_finite[slot] = 1;
      return;
    }
    copy_into_padded(input, plan, padded_image);
    float* image_gradient = nullptr;
    if (plan.grad_input != nullptr) {
      __builtin_memset(grad_image, 0, static_cast<size_t>(plan.image_floats) * sizeof(float));
      image_gradient = grad_image;
    }
    if (plan.sparse) {
      backward_image_sparse<kLanes>(plan, image, padded_image, image_gradient, weight_sums, sparse);
    } else {
      backward_image_dense<kLanes>(plan, image, padded_image, image_gradient, weight_sums, gradient_plane);
    }
    if (plan.grad_input != nullptr) {
      copy_from_padded(grad_image, plan, plan.grad_input + image * image_size);
    }
  }
}

// The task loop of the backward, instantiated by each
// conv_relu_pool_isa_<isa>.cpp. Task t covers the images [t * batch /
// task_count, (t + 1) * batch / task_count) with scratch memory slot t,
// whichever thread runs it, so the driver sums the weight accumulators in
// the same order on every call and the result does not depend on how the
// threads were scheduled.
template <int kLanes>
FCNNZOO_INLINE void run_backward_tasks(const BackwardPlan& plan, int64_t begin, int64_t end, int /*worker*/) {
  const int64_t batch = plan.shape.batch;
  for (int64_t task = begin; task < end; ++task) {
    backward_images<kLanes>(plan, task * batch / plan.task_count, (task + 1) * batch / plan.task_count, task);
  }
}

}  // namespace
}  // namespace fcnnzoo
