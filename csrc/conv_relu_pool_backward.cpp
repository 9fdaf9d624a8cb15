// Driver of the backward: the gradient of the convolution output for
// PyTorch's convolution backward, and the fused backward that computes the
// input, weight and bias gradients itself (conv_relu_pool_backward_body.h).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>

#include "conv_relu_pool_kernels.h"
#include "conv_relu_pool_plan.h"
#include "thread_pool.h"

namespace fcnnzoo {
namespace {

// Below this many convolution outputs per thread, waking another thread
// costs more than it saves; the loop is bound by memory bandwidth.
constexpr int64_t kMinOutputsPerThread = 65536;

struct GradientCall {
  const ConvReluPoolShape* shape;
  const ConvReluPoolSizes* sizes;
  const float* grad_output;
  const float* output;
  const uint8_t* indices;
  float* grad_conv;
};

// One task is one (image, output channel) plane.
void conv_gradient_tasks(void* context, int64_t begin, int64_t end, int /*worker*/) {
  const GradientCall& call = *static_cast<const GradientCall*>(context);
  const ConvReluPoolShape& shape = *call.shape;
  const ConvReluPoolSizes& sizes = *call.sizes;
  const int64_t pooled_plane = sizes.pooled_height * sizes.pooled_width;
  const int64_t conv_plane = sizes.conv_height * sizes.conv_width;

  for (int64_t plane = begin; plane < end; ++plane) {
    float* grad_conv = call.grad_conv + plane * conv_plane;
    std::memset(grad_conv, 0, static_cast<size_t>(conv_plane) * sizeof(float));
    const float* grad_output = call.grad_output + plane * pooled_plane;
    const float* output = call.output + plane * pooled_plane;
    const uint8_t* indices = call.indices + plane * pooled_plane;
    for (int64_t py = 0; py < sizes.pooled_height; ++py) {
      for (int64_t px = 0; px < sizes.pooled_width; ++px) {
        const int64_t position = py * sizes.pooled_width + px;
        // PyTorch's ReLU backward passes no gradient where its result is
        // <= 0, so a NaN result passes it.
        if (output[position] <= 0.0f) {
          continue;
        }
        const int64_t index = indices[position];
        const int64_t row =
            py * shape.pool_stride_height - shape.pool_padding_height + index / shape.pool_kernel_width;
        const int64_t column =
            px * shape.pool_stride_width - shape.pool_padding_width + index % shape.pool_kernel_width;
        // Windows may overlap, so one output can win several of them.
        grad_conv[row * sizes.conv_width + column] += grad_output[position];
      }
    }
  }
}

int64_t round_up(int64_t value, int64_t multiple) { return (value + multiple - 1) / multiple * multiple; }

// Below this many multiply-adds per thread, waking another thread costs
// more than it saves (an estimate, as for the forward).
constexpr int64_t kMinMultiplyAddsPerThread = 1 << 20;

// A 64-byte aligned float array filled with zeros.
class ZeroedFloats {
 public:
  explicit ZeroedFloats(int64_t count)
      : data_(static_cast<float*>(::operator new(static_cast<size_t>(std::max<int64_t>(count, 1)) * sizeof(float),
                                                 std::align_val_t(64)))) {
    std::memset(data_, 0, static_cast<size_t>(std::max<int64_t>(count, 1)) * sizeof(float));
  }
  ~ZeroedFloats() { ::operator delete(data_, std::align_val_t(64)); }
  ZeroedFloats(const ZeroedFloats&) = delete;
  ZeroedFloats& operator=(const ZeroedFloats&) = delete;
  float* data() const { return data_; }

 private:
  float* data_;
};

}  // namespace

bool conv_relu_pool_backward(const ConvReluPoolShape& shape, const ConvReluPoolSizes& sizes,
                             const ConvReluPoolBackwardTensors& tensors, int thread_count) {
  const int64_t taps = shape.kernel_height * shape.kernel_width;
  const int64_t kernel_floats = shape.in_channels * taps;
  if (tensors.grad_weight != nullptr) {
    std::memset(tensors.grad_weight, 0, static_cast<size_t>(shape.out_channels * kernel_floats) * sizeof(float));
  }
  if (tensors.grad_bias != nullptr) {
    std::memset(tensors.grad_bias, 0, static_cast<size_t>(shape.out_channels) * sizeof(float));
  }
  if (shape.batch == 0) {
    return true;
  }
  for (int64_t index = 0; index < shape.out_channels * kernel_floats; ++index) {
    if (!std::isfinite(tensors.weight[index])) {
      return false;
    }
  }

  const IsaFunctions& isa = widest_isa_functions();
  const int64_t lanes = isa.lanes;
  BackwardPlan plan;
  plan.shape = shape;
  plan.sizes = sizes;
  plan.grad_output = tensors.grad_output;
  plan.output = tensors.output;
  plan.indices = tensors.indices;
  plan.input = tensors.input;
  plan.grad_input = tensors.grad_input;
  plan.need_weight = tensors.grad_weight != nullptr;
  for (int64_t index = 0; index < shape.pool_kernel_height * shape.pool_kernel_width; ++index) {
    plan.window_row[index] = static_cast<uint8_t>(index / shape.pool_kernel_width);
    plan.window_column[index] = static_cast<uint8_t>(index % shape.pool_kernel_width);
  }
  // Rows of kernel_width * in_channels floats fill at least one vector.
  plan.sparse = shape.kernel_width * shape.in_channels >= lanes;

  // Transposed to [out_channel][kh][kw][in_channel] for the sparse layout.
  std::unique_ptr<ZeroedFloats> transposed;
  plan.weight = tensors.weight;
  if (plan.sparse) {
    transposed = std::make_unique<ZeroedFloats>(shape.out_channels * kernel_floats);
    float* target = transposed->data();
    for (int64_t out_channel = 0; out_channel < shape.out_channels; ++out_channel) {
      for (int64_t channel = 0; channel < shape.in_channels; ++channel) {
        for (int64_t tap = 0; tap < taps; ++tap) {
          target[(out_channel * taps + tap) * shape.in_channels + channel] =
              tensors.weight[(out_channel * shape.in_channels + channel) * taps + tap];
        }
      }
    }
    plan.weight = target;
  }

  const bool vector_rows = !plan.sparse && shape.stride_width == 1;
  // Whole pairs of vectors, which the 2x2 pool's vector scatter writes.
  plan.plane_width = vector_rows ? round_up(sizes.conv_width, 2 * lanes) : sizes.conv_width;
  const int64_t read_width = vector_rows ? plan.plane_width + shape.kernel_width - 1
                                         : (sizes.conv_width - 1) * shape.stride_width + shape.kernel_width;
  plan.padded_width = std::max(read_width, shape.padding_width + shape.in_width);
  plan.padded_height = std::max((sizes.conv_height - 1) * shape.stride_height + shape.kernel_height,
                                shape.padding_height + shape.in_height);
  plan.weight_sum_floats = round_up(shape.out_channels * (kernel_floats + 1), 16);
  plan.image_floats = round_up(plan.padded_height * plan.padded_width * shape.in_channels, 16);
  plan.winner_floats = round_up(sizes.pooled_height * sizes.pooled_width, 16);
  plan.entry_floats = round_up(shape.out_channels * sizes.pooled_height * sizes.pooled_width, 16);
  plan.position_floats = round_up(sizes.conv_height * sizes.conv_width + 1, 16);
  const int64_t plane_floats = plan.sparse ? 2 * plan.winner_floats + 5 * plan.entry_floats + plan.position_floats
                                           : round_up(sizes.conv_height * plan.plane_width, 16);
  plan.scratch_stride = plan.weight_sum_floats + 2 * plan.image_floats + plane_floats;
  if (plan.sparse && std::max(plan.image_floats, plan.entry_floats) > INT32_MAX) {
    throw std::invalid_argument("one sample has more than 2^31 input or pooled values, too many for the backward.");
  }

  // Each pooled value sends one multiply-add per weight to each gradient.
  const int64_t work = shape.batch * shape.out_channels * sizes.pooled_height * sizes.pooled_width * kernel_floats;
  const int64_t useful_threads = 1 + work / kMinMultiplyAddsPerThread;
  const int threads = static_cast<int>(
      std::max<int64_t>(1, std::min<int64_t>({thread_count, shape.batch, useful_threads, ThreadPool::kMaxThreads})));
  ZeroedFloats scratch(plan.scratch_stride * threads);
  plan.scratch = scratch.data();
  std::unique_ptr<uint8_t[]> non_finite(new uint8_t[static_cast<size_t>(threads)]());
  plan.non_finite = non_finite.get();
  plan.task_count = threads;
  ThreadPool::instance().run(threads, threads, 1, isa.backward_tasks, &plan);
  if (std::any_of(non_finite.get(), non_finite.get() + threads, [](uint8_t flag) { return flag != 0; })) {
    return false;
  }

  // Sum the workers' accumulators into the weight layout.
  for (int worker = 0; worker < threads; ++worker) {
    const float* sums = plan.scratch + worker * plan.scratch_stride;
    if (tensors.grad_weight != nullptr) {
      for (int64_t out_channel = 0; out_channel < shape.out_channels; ++out_channel) {
        for (int64_t channel = 0; channel < shape.in_channels; ++channel) {
          for (int64_t tap = 0; tap < taps; ++tap) {
            const int64_t source = plan.sparse ? (out_channel * taps + tap) * shape.in_channels + channel
                                               : (out_channel * shape.in_channels + channel) * taps + tap;
            tensors.grad_weight[(out_channel * shape.in_channels + channel) * taps + tap] += sums[source];
          }
        }
      }
    }
    if (tensors.grad_bias != nullptr) {
      const float* bias_sums = sums + shape.out_channels * kernel_floats;
      for (int64_t out_channel = 0; out_channel < shape.out_channels; ++out_channel) {
        tensors.grad_bias[out_channel] += bias_sums[out_channel];
      }
    }
  }
  return true;
}

void conv_relu_pool_conv_gradient(const ConvReluPoolShape& shape, const ConvReluPoolSizes& sizes,
                                  const float* grad_output, const float* output, const uint8_t* indices,
                                  float* grad_conv, int thread_count) {
  const int64_t planes = shape.batch * shape.out_channels;
  const int64_t outputs = planes * sizes.conv_height * sizes.conv_width;
  const int threads = static_cast<int>(std::max<int64_t>(
      1, std::min<int64_t>({thread_count, 1 + outputs / kMinOutputsPerThread, ThreadPool::kMaxThreads})));
  GradientCall call{&shape, &sizes, grad_output, output, indices, grad_conv};
  const int64_t chunk_size = std::max<int64_t>(1, planes / (8 * static_cast<int64_t>(threads)));
  ThreadPool::instance().run(threads, planes, chunk_size, conv_gradient_tasks, &call);
}

}  // namespace fcnnzoo
