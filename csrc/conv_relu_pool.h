// Shape, arguments and output-size rules of the fused conv2d -> ReLU ->
// max_pool2d forward, shared by every kernel variant and the bindings.
#pragma once

#include <cstdint>

namespace fcnnzoo {

struct PackedWeights;

// Sizes and hyper-parameters of one forward call. Tensors are float32,
// NCHW and C-contiguous; the weight is (out_channels, in_channels / groups,
// kernel_height, kernel_width) as in torch.nn.Conv2d.
struct ConvReluPoolShape {
  int64_t batch = 0;
  int64_t in_channels = 0;
  int64_t in_height = 0;
  int64_t in_width = 0;
  int64_t out_channels = 0;
  int64_t kernel_height = 0;
  int64_t kernel_width = 0;
  int64_t stride_height = 1;
  int64_t stride_width = 1;
  int64_t padding_height = 0;
  int64_t padding_width = 0;
  // Spacing between kernel taps, as the dilation of torch.nn.Conv2d.
  int64_t dilation_height = 1;
  int64_t dilation_width = 1;
  // Output channel c reads input channels [g * in_channels / groups,
  // (g + 1) * in_channels / groups) with g = c / (out_channels / groups).
  int64_t groups = 1;
  int64_t pool_kernel_height = 2;
  int64_t pool_kernel_width = 2;
  int64_t pool_stride_height = 2;
  int64_t pool_stride_width = 2;
  // Implicit negative-infinity padding of the max pool, at most half of the
  // pool kernel. The ReLU outputs are >= 0 and every window contains at
  // least one of them, so a padded position never wins.
  int64_t pool_padding_height = 0;
  int64_t pool_padding_width = 0;
  bool ceil_mode = false;
};

// Sizes derived from a valid shape.
struct ConvReluPoolSizes {
  int64_t conv_height = 0;
  int64_t conv_width = 0;
  int64_t pooled_height = 0;
  int64_t pooled_width = 0;
  // Leading convolution rows and columns that some pooling window covers.
  // The rest never reaches the output, so kernels may skip computing it.
  int64_t used_conv_height = 0;
  int64_t used_conv_width = 0;
};

// Raw pointers to the tensors of one call. bias and indices may be null.
struct ConvReluPoolTensors {
  const float* input = nullptr;
  const float* weight = nullptr;
  const float* bias = nullptr;
  float* output = nullptr;
  // Optional, shaped like output: the position of each pooled value inside
  // its pooling window, row * pool_kernel_width + column, counted from the
  // window's top-left corner (in the pool padding for the first windows), picked as max_pool2d picks it: the last NaN
  // in row-major order if the window has one, else the first position
  // whose convolution value equals the maximum. Where the output is zero,
  // no gradient flows back and the index is only guaranteed to lie inside
  // the window. Needs windows of at most kMaxIndexedWindow positions.
  uint8_t* indices = nullptr;
  // Optional: the weight and bias packed for the kernel that runs, by
  // pack_weights_for (conv_relu_pool_packing.h). When null, the kernel packs
  // them itself for this call.
  const PackedWeights* packed = nullptr;
};

// The largest pooling window whose positions fit in the uint8 indices.
constexpr int64_t kMaxIndexedWindow = 256;

// Size of a convolution output along one axis, as torch.nn.functional.conv2d
// computes it, or zero when the dilated kernel does not fit.
int64_t conv_output_size(int64_t input, int64_t kernel, int64_t stride, int64_t padding, int64_t dilation = 1);

// Input channels that one output channel reads: in_channels / groups.
inline int64_t group_in_channels(const ConvReluPoolShape& shape) { return shape.in_channels / shape.groups; }

// Whether every output channel reads exactly its own input channel.
inline bool is_depthwise(const ConvReluPoolShape& shape) {
  return shape.groups > 1 && shape.groups == shape.in_channels && shape.groups == shape.out_channels;
}

// Size of a max_pool2d output (dilation 1) along one axis, with PyTorch's
// rule: ceil_mode rounds up, but a last window that would start in the right
// or bottom padding, or past it, is dropped. Zero or negative when no window fits.
int64_t pool_output_size(int64_t input, int64_t kernel, int64_t stride, bool ceil_mode, int64_t padding = 0);

// Checks every field of the shape and returns the derived sizes.
// Throws std::invalid_argument naming the first invalid field and its value.
// batch may be zero, and every other size must be positive.
ConvReluPoolSizes validate_shape(const ConvReluPoolShape& shape);

}  // namespace fcnnzoo
