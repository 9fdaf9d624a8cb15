// Validation and output-size rules of the fused conv2d -> ReLU -> max_pool2d.
#include "conv_relu_pool.h"

#include <cstdint>
#include <stdexcept>
#include <string>

namespace fcnnzoo {
namespace {

// Largest accepted size of a single dimension, so that every index product
// below fits in int64_t with room to spare.
constexpr int64_t kMaxDimension = (int64_t{1} << 31) - 1;

// Largest accepted element count of one tensor (2^48 floats is 1 PiB).
constexpr int64_t kMaxElements = int64_t{1} << 48;

int64_t floor_divide(int64_t numerator, int64_t denominator) {
  int64_t quotient = numerator / denominator;
  if ((numerator % denominator != 0) && ((numerator < 0) != (denominator < 0))) {
    quotient -= 1;
  }
  return quotient;
}

void require_in_range(const char* name, int64_t value, int64_t minimum) {
  if (value < minimum || value > kMaxDimension) {
    throw std::invalid_argument(std::string(name) + " must be between " + std::to_string(minimum) + " and " +
                                std::to_string(kMaxDimension) + ", got " + std::to_string(value) + ".");
  }
}

void require_element_count(const char* name, int64_t a, int64_t b, int64_t c, int64_t d) {
  int64_t count = 1;
  for (int64_t factor : {a, b, c, d}) {
    if (factor != 0 && count > kMaxElements / factor) {
      throw std::invalid_argument(std::string(name) +
                                  " has more than 2^48 elements, which this kernel does not support.");
    }
    count *= factor;
  }
}

std::string pair_text(int64_t first, int64_t second) {
  return "(" + std::to_string(first) + ", " + std::to_string(second) + ")";
}

}  // namespace

int64_t conv_output_size(int64_t input, int64_t kernel, int64_t stride, int64_t padding, int64_t dilation) {
  const int64_t span = input + 2 * padding - dilation * (kernel - 1) - 1;
  if (span < 0) {
    return 0;
  }
  return span / stride + 1;
}

int64_t pool_output_size(int64_t input, int64_t kernel, int64_t stride, bool ceil_mode, int64_t padding) {
  const int64_t rounding = ceil_mode ? stride - 1 : 0;
  int64_t size = floor_divide(input + 2 * padding - kernel + rounding, stride) + 1;
  if (ceil_mode && size > 0 && (size - 1) * stride >= input + padding) {
    size -= 1;
  }
  return size;
}

ConvReluPoolSizes validate_shape(const ConvReluPoolShape& shape) {
  require_in_range("batch", shape.batch, 0);
  require_in_range("in_channels", shape.in_channels, 1);
  require_in_range("in_height", shape.in_height, 1);
  require_in_range("in_width", shape.in_width, 1);
  require_in_range("out_channels", shape.out_channels, 1);
  require_in_range("kernel_height", shape.kernel_height, 1);
  require_in_range("kernel_width", shape.kernel_width, 1);
  require_in_range("stride_height", shape.stride_height, 1);
  require_in_range("stride_width", shape.stride_width, 1);
  require_in_range("padding_height", shape.padding_height, 0);
  require_in_range("padding_width", shape.padding_width, 0);
  require_in_range("dilation_height", shape.dilation_height, 1);
  require_in_range("dilation_width", shape.dilation_width, 1);
  require_in_range("groups", shape.groups, 1);
  if (shape.in_channels % shape.groups != 0 || shape.out_channels % shape.groups != 0) {
    throw std::invalid_argument("groups=" + std::to_string(shape.groups) + " must divide in_channels=" +
                                std::to_string(shape.in_channels) + " and out_channels=" +
                                std::to_string(shape.out_channels) + ".");
  }
  require_in_range("pool_kernel_height", shape.pool_kernel_height, 1);
  require_in_range("pool_kernel_width", shape.pool_kernel_width, 1);
  require_in_range("pool_stride_height", shape.pool_stride_height, 1);
  require_in_range("pool_stride_width", shape.pool_stride_width, 1);
  require_in_range("pool_padding_height", shape.pool_padding_height, 0);
  require_in_range("pool_padding_width", shape.pool_padding_width, 0);
  if (2 * shape.pool_padding_height > shape.pool_kernel_height ||
      2 * shape.pool_padding_width > shape.pool_kernel_width) {
    throw std::invalid_argument("pool_padding " + pair_text(shape.pool_padding_height, shape.pool_padding_width) +
                                " must be at most half of pool_kernel " +
                                pair_text(shape.pool_kernel_height, shape.pool_kernel_width) + ".");
  }
  require_element_count("input", shape.batch, shape.in_channels, shape.in_height, shape.in_width);
  require_element_count("weight", shape.out_channels, group_in_channels(shape), shape.kernel_height,
                        shape.kernel_width);

  ConvReluPoolSizes sizes;
  sizes.conv_height = conv_output_size(shape.in_height, shape.kernel_height, shape.stride_height, shape.padding_height,
                                       shape.dilation_height);
  sizes.conv_width = conv_output_size(shape.in_width, shape.kernel_width, shape.stride_width, shape.padding_width,
                                      shape.dilation_width);
  if (sizes.conv_height <= 0 || sizes.conv_width <= 0) {
    throw std::invalid_argument(
        "kernel size " + pair_text(shape.kernel_height, shape.kernel_width) + " (dilation " +
        pair_text(shape.dilation_height, shape.dilation_width) + ") is larger than the padded input " +
        pair_text(shape.in_height + 2 * shape.padding_height, shape.in_width + 2 * shape.padding_width) +
        "; use a smaller kernel or more padding.");
  }

  sizes.pooled_height = pool_output_size(sizes.conv_height, shape.pool_kernel_height, shape.pool_stride_height,
                                         shape.ceil_mode, shape.pool_padding_height);
  sizes.pooled_width = pool_output_size(sizes.conv_width, shape.pool_kernel_width, shape.pool_stride_width,
                                        shape.ceil_mode, shape.pool_padding_width);
  if (sizes.pooled_height <= 0 || sizes.pooled_width <= 0) {
    throw std::invalid_argument(
        "pool_kernel " + pair_text(shape.pool_kernel_height, shape.pool_kernel_width) +
        " is larger than the convolution output " + pair_text(sizes.conv_height, sizes.conv_width) +
        ", so the output would be empty; use a smaller pool_kernel.");
  }
  require_element_count("output", shape.batch, shape.out_channels, sizes.pooled_height, sizes.pooled_width);

  const int64_t last_row_end =
      (sizes.pooled_height - 1) * shape.pool_stride_height - shape.pool_padding_height + shape.pool_kernel_height;
  const int64_t last_column_end =
      (sizes.pooled_width - 1) * shape.pool_stride_width - shape.pool_padding_width + shape.pool_kernel_width;
  sizes.used_conv_height = last_row_end < sizes.conv_height ? last_row_end : sizes.conv_height;
  sizes.used_conv_width = last_column_end < sizes.conv_width ? last_column_end : sizes.conv_width;
  return sizes;
}

}  // namespace fcnnzoo
