// Checks every kernel variant that this process may run against a naive
// double-precision reference written here, on random shapes and on fixed
// edge cases. Plain C++ without Python, built with
// -DFCNNZOO_BUILD_NATIVE_TESTS=ON and run by CTest, usually under
// AddressSanitizer and UndefinedBehaviorSanitizer (scripts/native-tests.sh).
//
// Each variant also runs with indices, which must name the window position
// max_pool2d would pick, and the backward (the fused one and the gradient
// of the convolution output) is compared with a naive backward built on
// those indices.
//
// FCNNZOO_CPU_CAPABILITY (avx512, avx2, default) limits the variants to one
// instruction-set level and below. The program also checks that the default
// choice then stays within that level. Exit code 0 when every check
// passes, 1 otherwise.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "conv_relu_pool.h"
#include "conv_relu_pool_kernels.h"

namespace {

using fcnnzoo::ConvReluPoolBackwardTensors;
using fcnnzoo::ConvReluPoolKernel;
using fcnnzoo::ConvReluPoolShape;
using fcnnzoo::ConvReluPoolSizes;
using fcnnzoo::ConvReluPoolTensors;

int g_failures = 0;
int64_t g_checks = 0;

void fail(const std::string& message) {
  ++g_failures;
  if (g_failures <= 20) {
    std::fprintf(stderr, "FAIL: %s\n", message.c_str());
  }
}

void expect(bool condition, const std::string& message) {
  ++g_checks;
  if (!condition) {
    fail(message);
  }
}

std::string describe(const ConvReluPoolShape& s, bool has_bias) {
  char text[320];
  std::snprintf(text, sizeof text,
                "input (%lld, %lld, %lld, %lld), out_channels %lld, kernel (%lld, %lld), stride (%lld, %lld), "
                "padding (%lld, %lld), pool (%lld, %lld) stride (%lld, %lld), ceil_mode %d, bias %d",
                static_cast<long long>(s.batch), static_cast<long long>(s.in_channels),
                static_cast<long long>(s.in_height), static_cast<long long>(s.in_width),
                static_cast<long long>(s.out_channels), static_cast<long long>(s.kernel_height),
                static_cast<long long>(s.kernel_width), static_cast<long long>(s.stride_height),
                static_cast<long long>(s.stride_width), static_cast<long long>(s.padding_height),
                static_cast<long long>(s.padding_width), static_cast<long long>(s.pool_kernel_height),
                static_cast<long long>(s.pool_kernel_width), static_cast<long long>(s.pool_stride_height),
                static_cast<long long>(s.pool_stride_width), s.ceil_mode ? 1 : 0, has_bias ? 1 : 0);
  return text;
}

// max_pool2d(relu(conv2d(x))) with plain loops in double precision. Sizes
// come from the formulas written out here, not from validate_shape, so that
// the check covers the size rules too. A NaN anywhere in a window makes the
// pooled value NaN, as in PyTorch.
struct Expected {
  int64_t pooled_height = 0;
  int64_t pooled_width = 0;
  std::vector<double> values;
  // max_pool2d's pick in each window: the last NaN, else the first maximum.
  std::vector<int64_t> winners;
  // relu(conv2d(x)) of shape (batch, out_channels, conv_height, conv_width).
  int64_t conv_height = 0;
  int64_t conv_width = 0;
  std::vector<double> conv;
};

int64_t naive_pool_size(int64_t input, int64_t kernel, int64_t stride, bool ceil_mode) {
  // With ceil_mode a window may hang over the end, even when the kernel is
  // larger than the whole input.
  const int64_t span = input - kernel + (ceil_mode ? stride - 1 : 0);
  if (span < 0) {
    return 0;
  }
  int64_t size = span / stride + 1;
  if (ceil_mode && (size - 1) * stride >= input) {
    size -= 1;
  }
  return size;
}

Expected naive_forward(const ConvReluPoolShape& s, const std::vector<float>& input, const std::vector<float>& weight,
                       const float* bias) {
  const int64_t conv_height = (s.in_height + 2 * s.padding_height - s.kernel_height) / s.stride_height + 1;
  const int64_t conv_width = (s.in_width + 2 * s.padding_width - s.kernel_width) / s.stride_width + 1;
  std::vector<double> conv(static_cast<size_t>(s.batch * s.out_channels * conv_height * conv_width));
  for (int64_t n = 0; n < s.batch; ++n) {
    for (int64_t oc = 0; oc < s.out_channels; ++oc) {
      for (int64_t oy = 0; oy < conv_height; ++oy) {
        for (int64_t ox = 0; ox < conv_width; ++ox) {
          double sum = bias != nullptr ? bias[oc] : 0.0;
          for (int64_t ic = 0; ic < s.in_channels; ++ic) {
            for (int64_t ky = 0; ky < s.kernel_height; ++ky) {
              for (int64_t kx = 0; kx < s.kernel_width; ++kx) {
                const int64_t y = oy * s.stride_height + ky - s.padding_height;
                const int64_t x = ox * s.stride_width + kx - s.padding_width;
                if (y < 0 || y >= s.in_height || x < 0 || x >= s.in_width) {
                  continue;
                }
                sum += static_cast<double>(input[((n * s.in_channels + ic) * s.in_height + y) * s.in_width + x]) *
                       weight[((oc * s.in_channels + ic) * s.kernel_height + ky) * s.kernel_width + kx];
              }
            }
          }
          conv[((n * s.out_channels + oc) * conv_height + oy) * conv_width + ox] = std::isnan(sum) ? sum
                                                                                   : sum > 0.0   ? sum
                                                                                                 : 0.0;
        }
      }
    }
  }

  Expected expected;
  expected.pooled_height = naive_pool_size(conv_height, s.pool_kernel_height, s.pool_stride_height, s.ceil_mode);
  expected.pooled_width = naive_pool_size(conv_width, s.pool_kernel_width, s.pool_stride_width, s.ceil_mode);
  const size_t pooled_count =
      static_cast<size_t>(s.batch * s.out_channels * expected.pooled_height * expected.pooled_width);
  expected.values.resize(pooled_count);
  expected.winners.resize(pooled_count);
  size_t index = 0;
  for (int64_t plane = 0; plane < s.batch * s.out_channels; ++plane) {
    for (int64_t py = 0; py < expected.pooled_height; ++py) {
      for (int64_t px = 0; px < expected.pooled_width; ++px) {
        double best = -std::numeric_limits<double>::infinity();
        int64_t winner = 0;
        for (int64_t y = py * s.pool_stride_height;
             y < py * s.pool_stride_height + s.pool_kernel_height && y < conv_height; ++y) {
          for (int64_t x = px * s.pool_stride_width;
               x < px * s.pool_stride_width + s.pool_kernel_width && x < conv_width; ++x) {
            const double value = conv[(plane * conv_height + y) * conv_width + x];
            if (std::isnan(value) || value > best) {
              best = value;
              winner = (y - py * s.pool_stride_height) * s.pool_kernel_width + (x - px * s.pool_stride_width);
            }
          }
        }
        expected.winners[index] = winner;
        expected.values[index++] = best;
      }
    }
  }
  expected.conv_height = conv_height;
  expected.conv_width = conv_width;
  expected.conv = std::move(conv);
  return expected;
}

// Runs one variant on a copy-free call and compares every output element.
// Buffers have their exact sizes, so AddressSanitizer reports any read or
// write past a tensor, such as a vector tail that runs over.
void check_variant(const ConvReluPoolKernel& kernel, const ConvReluPoolShape& shape, const ConvReluPoolSizes& sizes,
                   const std::vector<float>& input, const std::vector<float>& weight, const std::vector<float>& bias,
                   bool has_bias, const Expected& expected, int thread_count) {
  const std::string where = std::string(kernel.name) + ", " + std::to_string(thread_count) + " thread(s), " +
                            describe(shape, has_bias);
  std::vector<float> output(expected.values.size(), -12345.0f);
  ConvReluPoolTensors tensors;
  tensors.input = input.data();
  tensors.weight = weight.data();
  tensors.bias = has_bias ? bias.data() : nullptr;
  tensors.output = output.data();
  try {
    kernel.forward(shape, sizes, tensors, thread_count);
  } catch (const std::exception& error) {
    fail(where + ": threw " + error.what());
    return;
  }

  const int64_t fan_in = shape.in_channels * shape.kernel_height * shape.kernel_width;
  const double tolerance = 2e-6 * static_cast<double>(fan_in) + 1e-5;

  // With indices: the same output, and each index names max_pool2d's pick.
  // A window whose largest values differ by less than the tolerance may
  // name any of them, since the variants round differently.
  std::vector<float> indexed_output(output.size(), -12345.0f);
  std::vector<uint8_t> indices(output.size(), 255);
  tensors.output = indexed_output.data();
  tensors.indices = indices.data();
  try {
    kernel.forward(shape, sizes, tensors, thread_count);
  } catch (const std::exception& error) {
    fail(where + ": threw with indices: " + error.what());
    return;
  }
  const int64_t pooled_plane = sizes.pooled_height * sizes.pooled_width;
  for (size_t i = 0; i < output.size(); ++i) {
    const bool same_output = (std::isnan(output[i]) && std::isnan(indexed_output[i])) || output[i] == indexed_output[i];
    const double want = expected.values[i];
    const int64_t got = indices[i];
    bool index_ok = got < shape.pool_kernel_height * shape.pool_kernel_width;
    if (index_ok && !(want <= 0.0)) {
      const int64_t plane = static_cast<int64_t>(i) / pooled_plane;
      const int64_t py = (static_cast<int64_t>(i) % pooled_plane) / sizes.pooled_width;
      const int64_t px = static_cast<int64_t>(i) % sizes.pooled_width;
      const int64_t y = py * shape.pool_stride_height + got / shape.pool_kernel_width;
      const int64_t x = px * shape.pool_stride_width + got % shape.pool_kernel_width;
      index_ok = y < expected.conv_height && x < expected.conv_width;
      if (index_ok && std::isnan(want)) {
        index_ok = got == expected.winners[i];
      } else if (index_ok) {
        const size_t position = static_cast<size_t>((plane * expected.conv_height + y) * expected.conv_width + x);
        const double value = expected.conv[position];
        index_ok = got == expected.winners[i] || std::abs(value - want) <= tolerance * (1.0 + std::abs(want));
      }
    }
    ++g_checks;
    if (!same_output || !index_ok) {
      fail(where + ": with indices, element " + std::to_string(i) + " has output " +
           std::to_string(indexed_output[i]) + " (without indices " + std::to_string(output[i]) + ") and index " +
           std::to_string(got) + ", expected index " + std::to_string(expected.winners[i]));
      return;
    }
  }

  for (size_t i = 0; i < output.size(); ++i) {
    const double want = expected.values[i];
    const double got = output[i];
    bool same = std::abs(got - want) <= tolerance * (1.0 + std::abs(want));
    if (std::isnan(want)) {
      same = std::isnan(got);
    } else if (std::isinf(want)) {
      same = got == want;
    }
    ++g_checks;
    if (!same) {
      fail(where + ": output element " + std::to_string(i) + " is " + std::to_string(got) + ", expected " +
           std::to_string(want));
      return;
    }
  }
}

// Compares the backward of one forward call (output and indices) with naive
// double-precision loops that send each gradient to the window position its
// index names, for 1 and 2 threads and every choice of wanted gradients.
void check_backward(const ConvReluPoolShape& shape, const ConvReluPoolSizes& sizes, const std::vector<float>& input,
                    const std::vector<float>& weight, const std::vector<float>& output,
                    const std::vector<uint8_t>& indices, std::mt19937& random, bool has_bias) {
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> grad_output(output.size());
  for (float& value : grad_output) {
    value = uniform(random);
  }
  const int64_t conv_plane = sizes.conv_height * sizes.conv_width;
  const int64_t pooled_plane = sizes.pooled_height * sizes.pooled_width;
  std::vector<double> grad_conv(static_cast<size_t>(shape.batch * shape.out_channels * conv_plane), 0.0);
  for (size_t i = 0; i < output.size(); ++i) {
    if (output[i] <= 0.0f) {
      continue;
    }
    const int64_t plane = static_cast<int64_t>(i) / pooled_plane;
    const int64_t py = (static_cast<int64_t>(i) % pooled_plane) / sizes.pooled_width;
    const int64_t px = static_cast<int64_t>(i) % sizes.pooled_width;
    const int64_t y = py * shape.pool_stride_height + indices[i] / shape.pool_kernel_width;
    const int64_t x = px * shape.pool_stride_width + indices[i] % shape.pool_kernel_width;
    grad_conv[static_cast<size_t>(plane * conv_plane + y * sizes.conv_width + x)] += grad_output[i];
  }
  std::vector<double> want_input(input.size(), 0.0);
  std::vector<double> want_weight(weight.size(), 0.0);
  std::vector<double> want_bias(static_cast<size_t>(shape.out_channels), 0.0);
  for (int64_t n = 0; n < shape.batch; ++n) {
    for (int64_t oc = 0; oc < shape.out_channels; ++oc) {
      for (int64_t oy = 0; oy < sizes.conv_height; ++oy) {
        for (int64_t ox = 0; ox < sizes.conv_width; ++ox) {
          const double gradient = grad_conv[static_cast<size_t>((n * shape.out_channels + oc) * conv_plane +
                                                                oy * sizes.conv_width + ox)];
          if (gradient == 0.0) {
            continue;
          }
          want_bias[static_cast<size_t>(oc)] += gradient;
          for (int64_t ic = 0; ic < shape.in_channels; ++ic) {
            for (int64_t ky = 0; ky < shape.kernel_height; ++ky) {
              for (int64_t kx = 0; kx < shape.kernel_width; ++kx) {
                const int64_t y = oy * shape.stride_height + ky - shape.padding_height;
                const int64_t x = ox * shape.stride_width + kx - shape.padding_width;
                if (y < 0 || y >= shape.in_height || x < 0 || x >= shape.in_width) {
                  continue;
                }
                const size_t input_index =
                    static_cast<size_t>(((n * shape.in_channels + ic) * shape.in_height + y) * shape.in_width + x);
                const size_t weight_index = static_cast<size_t>(
                    ((oc * shape.in_channels + ic) * shape.kernel_height + ky) * shape.kernel_width + kx);
                want_input[input_index] += gradient * weight[weight_index];
                want_weight[weight_index] += gradient * input[input_index];
              }
            }
          }
        }
      }
    }
  }

  const std::string where = "backward, " + describe(shape, has_bias);
  const double tolerance = 1e-4;
  auto compare = [&](const std::vector<float>& got, const std::vector<double>& want, const char* name,
                     const std::string& context) {
    for (size_t i = 0; i < got.size(); ++i) {
      ++g_checks;
      if (std::abs(got[i] - want[i]) > tolerance * (1.0 + std::abs(want[i]))) {
        fail(where + context + ": " + name + " element " + std::to_string(i) + " is " + std::to_string(got[i]) +
             ", expected " + std::to_string(want[i]));
        return;
      }
    }
  };

  for (int threads : {1, 2}) {
    const std::string context = ", " + std::to_string(threads) + " thread(s)";
    std::vector<float> grad_conv_got(grad_conv.size(), -7.0f);
    fcnnzoo::conv_relu_pool_conv_gradient(shape, sizes, grad_output.data(), output.data(), indices.data(),
                                          grad_conv_got.data(), threads);
    compare(grad_conv_got, grad_conv, "grad_conv", context);

    for (int mask = 1; mask < 8; ++mask) {
      std::vector<float> grad_input(input.size(), -7.0f);
      std::vector<float> grad_weight(weight.size(), -7.0f);
      std::vector<float> grad_bias(static_cast<size_t>(shape.out_channels), -7.0f);
      ConvReluPoolBackwardTensors tensors;
      tensors.grad_output = grad_output.data();
      tensors.output = output.data();
      tensors.indices = indices.data();
      tensors.input = input.data();
      tensors.weight = weight.data();
      tensors.grad_input = (mask & 1) != 0 ? grad_input.data() : nullptr;
      tensors.grad_weight = (mask & 2) != 0 ? grad_weight.data() : nullptr;
      tensors.grad_bias = (mask & 4) != 0 ? grad_bias.data() : nullptr;
      try {
        if (!fcnnzoo::conv_relu_pool_backward(shape, sizes, tensors, threads)) {
          fail(where + context + ": rejected finite inputs as non-finite");
          return;
        }
      } catch (const std::exception& error) {
        fail(where + context + ": threw " + error.what());
        return;
      }
      const std::string masked = context + ", gradient mask " + std::to_string(mask);
      if ((mask & 1) != 0) {
        compare(grad_input, want_input, "grad_input", masked);
      }
      if ((mask & 2) != 0) {
        compare(grad_weight, want_weight, "grad_weight", masked);
      }
      if ((mask & 4) != 0) {
        compare(grad_bias, want_bias, "grad_bias", masked);
      }
    }
  }
}

// Checks one shape on every variant that accepts it, with one and two
// threads, and then the backward of the default variant's output. Returns
// the number of variants that ran.
int check_shape(const ConvReluPoolShape& shape, bool has_bias, std::mt19937& random, bool with_special_values) {
  const ConvReluPoolSizes sizes = fcnnzoo::validate_shape(shape);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> input(static_cast<size_t>(shape.batch * shape.in_channels * shape.in_height * shape.in_width));
  std::vector<float> weight(
      static_cast<size_t>(shape.out_channels * shape.in_channels * shape.kernel_height * shape.kernel_width));
  std::vector<float> bias(static_cast<size_t>(shape.out_channels));
  for (float& value : input) {
    value = uniform(random);
  }
  for (float& value : weight) {
    value = uniform(random);
  }
  for (float& value : bias) {
    value = 0.5f * uniform(random);
  }
  if (with_special_values && !input.empty()) {
    input[random() % input.size()] = std::numeric_limits<float>::quiet_NaN();
    input[random() % input.size()] = std::numeric_limits<float>::infinity();
    input[random() % input.size()] = -std::numeric_limits<float>::infinity();
  }

  const Expected expected = naive_forward(shape, input, weight, has_bias ? bias.data() : nullptr);
  const bool sizes_match =
      expected.pooled_height == sizes.pooled_height && expected.pooled_width == sizes.pooled_width;
  expect(sizes_match,
         "validate_shape gives pooled size (" + std::to_string(sizes.pooled_height) + ", " +
             std::to_string(sizes.pooled_width) + "), expected (" + std::to_string(expected.pooled_height) + ", " +
             std::to_string(expected.pooled_width) + ") for " + describe(shape, has_bias));
  if (!sizes_match) {
    return 0;
  }

  int ran = 0;
  for (const std::string& name : fcnnzoo::supported_kernel_names()) {
    const ConvReluPoolKernel* kernel = nullptr;
    try {
      kernel = &fcnnzoo::find_kernel(name, shape, sizes);
    } catch (const std::invalid_argument&) {
      continue;  // The variant does not support this shape.
    }
    ++ran;
    for (int threads : {1, 2}) {
      check_variant(*kernel, shape, sizes, input, weight, bias, has_bias, expected, threads);
    }
  }

  // The fused backward computes finite inputs only and reports the others,
  // which callers send to the dense path.
  if (with_special_values && shape.batch > 0) {
    std::vector<float> output(expected.values.size());
    std::vector<uint8_t> indices(output.size());
    std::vector<float> grad_output(output.size(), 1.0f);
    std::vector<float> grad_weight(weight.size());
    ConvReluPoolTensors forward_tensors;
    forward_tensors.input = input.data();
    forward_tensors.weight = weight.data();
    forward_tensors.output = output.data();
    forward_tensors.indices = indices.data();
    fcnnzoo::find_kernel("", shape, sizes).forward(shape, sizes, forward_tensors, 2);
    ConvReluPoolBackwardTensors tensors;
    tensors.grad_output = grad_output.data();
    tensors.output = output.data();
    tensors.indices = indices.data();
    tensors.input = input.data();
    tensors.weight = weight.data();
    tensors.grad_weight = grad_weight.data();
    ++g_checks;
    expect(!fcnnzoo::conv_relu_pool_backward(shape, sizes, tensors, 2),
           "backward accepted a non-finite input for " + describe(shape, has_bias));
  }
  if (!with_special_values && shape.batch > 0) {
    std::vector<float> output(expected.values.size());
    std::vector<uint8_t> indices(output.size());
    ConvReluPoolTensors tensors;
    tensors.input = input.data();
    tensors.weight = weight.data();
    tensors.bias = has_bias ? bias.data() : nullptr;
    tensors.output = output.data();
    tensors.indices = indices.data();
    fcnnzoo::find_kernel("", shape, sizes).forward(shape, sizes, tensors, 2);
    check_backward(shape, sizes, input, weight, output, indices, random, has_bias);
  }
  return ran;
}

ConvReluPoolShape random_shape(std::mt19937& random) {
  auto pick = [&random](int64_t low, int64_t high) {
    return std::uniform_int_distribution<int64_t>(low, high)(random);
  };
  ConvReluPoolShape shape;
  shape.batch = pick(1, 3);
  // One shape in four has enough input channels for the sparse backward.
  shape.in_channels = pick(0, 3) == 0 ? pick(6, 20) : pick(1, 5);
  shape.in_height = pick(1, 20);
  // Widths up to 40 cover whole tiles of 12 and 14 outputs plus every tail.
  shape.in_width = pick(1, 40);
  // Up to 35 channels cover whole blocks of 4, 8 and 16 plus every tail.
  shape.out_channels = pick(1, 35);
  shape.kernel_height = pick(1, 5);
  shape.kernel_width = pick(1, 5);
  shape.stride_height = pick(1, 3);
  shape.stride_width = pick(1, 3);
  shape.padding_height = pick(0, 2);
  shape.padding_width = pick(0, 2);
  shape.pool_kernel_height = pick(1, 3);
  shape.pool_kernel_width = pick(1, 3);
  shape.pool_stride_height = pick(1, 3);
  shape.pool_stride_width = pick(1, 3);
  shape.ceil_mode = pick(0, 1) == 1;
  return shape;
}

ConvReluPoolShape winograd_shape(int64_t batch, int64_t in_channels, int64_t height, int64_t width,
                                 int64_t out_channels, int64_t padding, bool ceil_mode) {
  ConvReluPoolShape shape;
  shape.batch = batch;
  shape.in_channels = in_channels;
  shape.in_height = height;
  shape.in_width = width;
  shape.out_channels = out_channels;
  shape.kernel_height = 3;
  shape.kernel_width = 3;
  shape.padding_height = padding;
  shape.padding_width = padding;
  shape.ceil_mode = ceil_mode;
  return shape;
}

// The capability level of a variant, read from its name's suffix.
int name_level(const std::string& name) {
  if (name.size() >= 7 && name.compare(name.size() - 7, 7, "_avx512") == 0) {
    return 2;
  }
  if (name.size() >= 5 && name.compare(name.size() - 5, 5, "_avx2") == 0) {
    return 1;
  }
  return 0;
}

int requested_level() {
  const char* value = std::getenv("FCNNZOO_CPU_CAPABILITY");
  const std::string text = value != nullptr ? value : "";
  if (text == "default") {
    return 0;
  }
  if (text == "avx2") {
    return 1;
  }
  return 2;
}

// Every listed variant and every default choice stays within the level that
// FCNNZOO_CPU_CAPABILITY allows, and the widest allowed level is used.
void check_capability_limit() {
  const int limit = requested_level();
  int widest = 0;
  for (const std::string& name : fcnnzoo::supported_kernel_names()) {
    expect(name_level(name) <= limit, "supported_kernel_names() lists " + name + " above the requested level");
    widest = name_level(name) > widest ? name_level(name) : widest;
  }
  expect(widest == limit || std::getenv("FCNNZOO_CPU_CAPABILITY") == nullptr,
         "the widest listed variant has level " + std::to_string(widest) + ", but FCNNZOO_CPU_CAPABILITY asks for " +
             std::to_string(limit));

  for (const ConvReluPoolShape& shape :
       {winograd_shape(64, 1, 28, 28, 32, 0, false), winograd_shape(64, 32, 13, 13, 64, 0, false)}) {
    const ConvReluPoolSizes sizes = fcnnzoo::validate_shape(shape);
    const std::string chosen = fcnnzoo::find_kernel("", shape, sizes).name;
    expect(name_level(chosen) == widest,
           "the default choice " + chosen + " is not at the widest allowed level for " + describe(shape, true));
  }

  bool rejected = false;
  try {
    const ConvReluPoolShape shape = winograd_shape(1, 1, 8, 8, 1, 0, false);
    fcnnzoo::find_kernel("no_such_kernel", shape, fcnnzoo::validate_shape(shape));
  } catch (const std::invalid_argument& error) {
    rejected = std::string(error.what()).find("no_such_kernel") != std::string::npos;
  }
  expect(rejected, "find_kernel accepts an unknown name or does not name it in the error");
}

}  // namespace

int main() {
  const char* capability = std::getenv("FCNNZOO_CPU_CAPABILITY");
  std::vector<std::string> names;
  try {
    names = fcnnzoo::supported_kernel_names();
  } catch (const std::exception& error) {
    std::fprintf(stderr, "FAIL: %s\n", error.what());
    return 1;
  }
  std::printf("FCNNZOO_CPU_CAPABILITY=%s; variants:", capability != nullptr ? capability : "(unset)");
  for (const std::string& name : names) {
    std::printf(" %s", name.c_str());
  }
  std::printf("\n");

  check_capability_limit();

  std::mt19937 random(20261204);
  int64_t shapes = 0;
  int64_t variant_runs = 0;

  // Random shapes. Invalid ones, with a kernel larger than the padded input
  // or a pool larger than the convolution output, are drawn again.
  while (shapes < 150) {
    const ConvReluPoolShape shape = random_shape(random);
    try {
      fcnnzoo::validate_shape(shape);
    } catch (const std::invalid_argument&) {
      continue;
    }
    variant_runs += check_shape(shape, random() % 4 != 0, random, false);
    ++shapes;
  }

  // Shapes the Winograd variants accept: odd and even sizes, widths around
  // the tile counts 12 and 14, channel counts around the block widths, and
  // padding that needs the padded copy of the image.
  for (int64_t width : {4, 5, 6, 7, 26, 27, 28, 29, 30, 31, 32, 33, 58, 60}) {
    for (int64_t out_channels : {1, 3, 4, 5, 8, 9, 16, 17, 33}) {
      const int64_t in_channels = 1 + (width + out_channels) % 4;
      const int64_t padding = (width + out_channels) % 3 == 0 ? 1 : 0;
      variant_runs += check_shape(winograd_shape(2, in_channels, 4 + width % 11, width, out_channels, padding,
                                                 width % 2 == 1),
                                  true, random, false);
      ++shapes;
    }
  }

  // Edge cases: the reference network's layers, a 1x1 output, a single
  // input pixel with padding, a batch of zero, and then inputs that contain
  // a NaN, an infinity and a negative infinity.
  const ConvReluPoolShape edge_shapes[] = {
      winograd_shape(4, 1, 28, 28, 32, 0, false),
      winograd_shape(2, 32, 13, 13, 64, 0, false),
      winograd_shape(1, 3, 4, 4, 2, 0, false),
      winograd_shape(1, 2, 1, 1, 5, 1, true),
      winograd_shape(0, 3, 10, 10, 7, 0, false),
  };
  for (const ConvReluPoolShape& shape : edge_shapes) {
    variant_runs += check_shape(shape, true, random, false);
    ++shapes;
  }
  for (int repeat = 0; repeat < 8; ++repeat) {
    variant_runs += check_shape(winograd_shape(2, 2, 9 + repeat, 12 + 3 * repeat, 5 + repeat, repeat % 2, false),
                                true, random, true);
    ++shapes;
  }

  std::printf("%lld shapes, %lld variant runs, %lld checks, %d failures\n", static_cast<long long>(shapes),
              static_cast<long long>(variant_runs), static_cast<long long>(g_checks), g_failures);
  return g_failures == 0 ? 0 : 1;
}
