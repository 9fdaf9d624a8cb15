// Naive reference of the fused forward: every pooled output recomputes the
// convolution values of its window with plain loops. It exists to check the
// fast variants against an independent implementation, not for speed.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "conv_relu_pool_kernels.h"
#include "thread_pool.h"

namespace fcnnzoo {
namespace {

struct ReferenceCall {
  const ConvReluPoolShape* shape;
  const ConvReluPoolSizes* sizes;
  const ConvReluPoolTensors* tensors;
};

float convolve_at(const ConvReluPoolShape& shape, const ConvReluPoolTensors& tensors, int64_t image,
                  int64_t out_channel, int64_t conv_row, int64_t conv_column) {
  const int64_t channels = group_in_channels(shape);
  const int64_t first_channel = out_channel / (shape.out_channels / shape.groups) * channels;
  float sum = tensors.bias != nullptr ? tensors.bias[out_channel] : 0.0f;
  for (int64_t channel = 0; channel < channels; ++channel) {
    for (int64_t kh = 0; kh < shape.kernel_height; ++kh) {
      const int64_t y = conv_row * shape.stride_height + kh * shape.dilation_height - shape.padding_height;
      if (y < 0 || y >= shape.in_height) {
        continue;
      }
      for (int64_t kw = 0; kw < shape.kernel_width; ++kw) {
        const int64_t x = conv_column * shape.stride_width + kw * shape.dilation_width - shape.padding_width;
        if (x < 0 || x >= shape.in_width) {
          continue;
        }
        const float input =
            tensors.input[((image * shape.in_channels + first_channel + channel) * shape.in_height + y) *
                              shape.in_width +
                          x];
        const float weight =
            tensors.weight[((out_channel * channels + channel) * shape.kernel_height + kh) * shape.kernel_width + kw];
        sum += input * weight;
      }
    }
  }
  return sum;
}

// One task is one (image, output channel) plane of the output.
void reference_plane_tasks(void* context, int64_t begin, int64_t end, int /*worker*/) {
  const ReferenceCall& call = *static_cast<const ReferenceCall*>(context);
  const ConvReluPoolShape& shape = *call.shape;
  const ConvReluPoolSizes& sizes = *call.sizes;

  for (int64_t plane = begin; plane < end; ++plane) {
    const int64_t image = plane / shape.out_channels;
    const int64_t out_channel = plane % shape.out_channels;
    float* output = call.tensors->output + plane * sizes.pooled_height * sizes.pooled_width;
    uint8_t* indices = call.tensors->indices;
    if (indices != nullptr) {
      indices += plane * sizes.pooled_height * sizes.pooled_width;
    }

    // Windows start in the pool padding, whose positions never win, so the loops skip them.
    for (int64_t py = 0; py < sizes.pooled_height; ++py) {
      const int64_t row_begin = py * shape.pool_stride_height - shape.pool_padding_height;
      const int64_t row_end = std::min(row_begin + shape.pool_kernel_height, sizes.conv_height);
      for (int64_t px = 0; px < sizes.pooled_width; ++px) {
        const int64_t column_begin = px * shape.pool_stride_width - shape.pool_padding_width;
        const int64_t column_end = std::min(column_begin + shape.pool_kernel_width, sizes.conv_width);

        // ReLU applied before the max, and NaN wins the max, as in PyTorch.
        float maximum = -INFINITY;
        int64_t winner = 0;
        for (int64_t row = std::max<int64_t>(row_begin, 0); row < row_end; ++row) {
          for (int64_t column = std::max<int64_t>(column_begin, 0); column < column_end; ++column) {
            float value = convolve_at(shape, *call.tensors, image, out_channel, row, column);
            value = value < 0.0f ? 0.0f : value;
            // A later NaN replaces an earlier one, as in max_pool2d, so
            // the index names the last NaN.
            if (value > maximum || std::isnan(value)) {
              maximum = value;
              winner = (row - row_begin) * shape.pool_kernel_width + (column - column_begin);
            }
          }
        }
        output[py * sizes.pooled_width + px] = maximum;
        if (indices != nullptr) {
          indices[py * sizes.pooled_width + px] = static_cast<uint8_t>(winner);
        }
      }
    }
  }
}

}  // namespace

void conv_relu_pool_reference(const ConvReluPoolShape& shape, const ConvReluPoolSizes& sizes,
                              const ConvReluPoolTensors& tensors, int thread_count) {
  ReferenceCall call{&shape, &sizes, &tensors};
  ThreadPool::instance().run(thread_count, shape.batch * shape.out_channels, 1, reference_plane_tasks, &call);
}

}  // namespace fcnnzoo
