// Checks the int8 kernel that this process may run against a naive
// reference written here, with int64 accumulators, on random shapes and on
// fixed edge cases. The cases cover odd channel counts, strides, padding,
// ceil_mode pools, zero points 0, 128 and 255, extreme weights and inputs,
// NaN and infinite float inputs, and batch sizes 0 and 1. Plain C++ without
// Python, built with -DFCNNZOO_BUILD_NATIVE_TESTS=ON and run by CTest,
// usually under AddressSanitizer and UndefinedBehaviorSanitizer
// (scripts/native-tests.sh).
//
// FCNNZOO_CPU_CAPABILITY (avx512, avx2, default) limits the kernel to one
// instruction-set level and below; the program checks that the kernel name
// matches that level. Exit code 0 when every check passes, 1 otherwise.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <limits>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "conv_relu_pool.h"
#include "quantized_conv_relu_pool.h"

namespace {

using fcnnzoo::ConvReluPoolShape;
using fcnnzoo::ConvReluPoolSizes;
using fcnnzoo::QuantizedParameters;
using fcnnzoo::QuantizedTensors;

int g_failures = 0;
int64_t g_checks = 0;

void expect(bool condition, const std::string& message) {
  ++g_checks;
  if (!condition) {
    ++g_failures;
    if (g_failures <= 20) {
      std::fprintf(stderr, "FAIL: %s\n", message.c_str());
    }
  }
}

std::string describe(const ConvReluPoolShape& s, const QuantizedParameters& p) {
  char text[400];
  std::snprintf(text, sizeof text,
                "input (%lld, %lld, %lld, %lld), out_channels %lld, kernel (%lld, %lld), stride (%lld, %lld), "
                "padding (%lld, %lld), pool (%lld, %lld) stride (%lld, %lld), ceil_mode %d, zero points %d/%d, "
                "relu %d, float output %d",
                static_cast<long long>(s.batch), static_cast<long long>(s.in_channels),
                static_cast<long long>(s.in_height), static_cast<long long>(s.in_width),
                static_cast<long long>(s.out_channels), static_cast<long long>(s.kernel_height),
                static_cast<long long>(s.kernel_width), static_cast<long long>(s.stride_height),
                static_cast<long long>(s.stride_width), static_cast<long long>(s.padding_height),
                static_cast<long long>(s.padding_width), static_cast<long long>(s.pool_kernel_height),
                static_cast<long long>(s.pool_kernel_width), static_cast<long long>(s.pool_stride_height),
                static_cast<long long>(s.pool_stride_width), s.ceil_mode ? 1 : 0, p.input_zero_point,
                p.output_zero_point, p.relu ? 1 : 0, p.float_output ? 1 : 0);
  return text;
}

int quantize_naive(float value, double input_scale, int zero_point) {
  const float inverse = static_cast<float>(1.0 / input_scale);
  const float scaled = std::nearbyint(value * inverse);
  if (std::isnan(scaled)) {
    return zero_point;
  }
  const float shifted = scaled + static_cast<float>(zero_point);
  return static_cast<int>(std::min(std::max(shifted, 0.0F), 255.0F));
}

int64_t pool_size(int64_t input, int64_t kernel, int64_t stride, bool ceil_mode) {
  int64_t size = (input - kernel + (ceil_mode ? stride - 1 : 0)) / stride + 1;
  if (ceil_mode && (size - 1) * stride >= input) {
    size -= 1;
  }
  return size;
}

// The arithmetic of the module header with plain loops and int64
// accumulators. Returns the output as floats: q for a uint8 output, the
// dequantized value otherwise.
std::vector<float> run_naive(const ConvReluPoolShape& s, const QuantizedParameters& p,
                             const std::vector<uint8_t>& xq, const std::vector<int8_t>& weight,
                             const std::vector<int32_t>& bias, const std::vector<float>& multiplier) {
  const int64_t conv_height = (s.in_height + 2 * s.padding_height - s.kernel_height) / s.stride_height + 1;
  const int64_t conv_width = (s.in_width + 2 * s.padding_width - s.kernel_width) / s.stride_width + 1;
  const int64_t pooled_height = pool_size(conv_height, s.pool_kernel_height, s.pool_stride_height, s.ceil_mode);
  const int64_t pooled_width = pool_size(conv_width, s.pool_kernel_width, s.pool_stride_width, s.ceil_mode);
  std::vector<float> output;
  for (int64_t n = 0; n < s.batch; ++n) {
    for (int64_t o = 0; o < s.out_channels; ++o) {
      for (int64_t py = 0; py < pooled_height; ++py) {
        for (int64_t px = 0; px < pooled_width; ++px) {
          int64_t best = std::numeric_limits<int64_t>::min();
          for (int64_t wy = py * s.pool_stride_height;
               wy < std::min(py * s.pool_stride_height + s.pool_kernel_height, conv_height); ++wy) {
            for (int64_t wx = px * s.pool_stride_width;
                 wx < std::min(px * s.pool_stride_width + s.pool_kernel_width, conv_width); ++wx) {
              int64_t accumulator = bias.empty() ? 0 : bias[static_cast<size_t>(o)];
              for (int64_t c = 0; c < s.in_channels; ++c) {
                for (int64_t kh = 0; kh < s.kernel_height; ++kh) {
                  for (int64_t kw = 0; kw < s.kernel_width; ++kw) {
                    const int64_t y = wy * s.stride_height + kh - s.padding_height;
                    const int64_t x = wx * s.stride_width + kw - s.padding_width;
                    if (y < 0 || y >= s.in_height || x < 0 || x >= s.in_width) {
                      continue;
                    }
                    const int64_t value = xq[static_cast<size_t>(((n * s.in_channels + c) * s.in_height + y) *
                                                                 s.in_width + x)];
                    const int64_t w = weight[static_cast<size_t>(((o * s.in_channels + c) * s.kernel_height + kh) *
                                                                 s.kernel_width + kw)];
                    accumulator += (value - p.input_zero_point) * w;
                  }
                }
              }
              best = std::max(best, accumulator);
            }
          }
          if (p.relu) {
            best = std::max<int64_t>(best, 0);
          }
          const float product = static_cast<float>(static_cast<double>(best)) * multiplier[static_cast<size_t>(o)];
          const float shifted = std::nearbyint(product) + static_cast<float>(p.output_zero_point);
          const float q = std::min(std::max(shifted, 0.0F), 255.0F);
          output.push_back(p.float_output ? (q - static_cast<float>(p.output_zero_point)) * p.output_scale : q);
        }
      }
    }
  }
  return output;
}

struct Inputs {
  std::vector<float> x_float;
  std::vector<uint8_t> xq;
  std::vector<int8_t> weight;
  std::vector<int32_t> bias;
  std::vector<float> multiplier;
};

// Runs the kernel on the float and on the uint8 input and compares both with run_naive.
void check(const ConvReluPoolShape& shape, const QuantizedParameters& parameters, const Inputs& inputs,
           int threads) {
  const std::string where = describe(shape, parameters);
  std::shared_ptr<const fcnnzoo::QuantizedPackedWeights> packed;
  try {
    packed = fcnnzoo::pack_quantized_weights(shape, inputs.weight.data());
    const ConvReluPoolShape call =
        fcnnzoo::quantized_call_shape(*packed, shape.batch, shape.in_channels, shape.in_height, shape.in_width);
    const ConvReluPoolSizes sizes = fcnnzoo::validate_shape(call);
    fcnnzoo::validate_quantized_parameters(parameters, inputs.multiplier.data(), shape.out_channels);
    const int32_t* bias = inputs.bias.empty() ? nullptr : inputs.bias.data();
    expect(fcnnzoo::accumulator_fits_int32(*packed, bias, parameters.input_zero_point), "bound: " + where);

    const std::vector<float> expected =
        run_naive(shape, parameters, inputs.xq, inputs.weight, inputs.bias, inputs.multiplier);
    const size_t count = static_cast<size_t>(shape.batch * shape.out_channels * sizes.pooled_height *
                                             sizes.pooled_width);
    expect(expected.size() == count, "size rule: " + where);
    for (const bool float_input : {false, true}) {
      QuantizedTensors tensors;
      tensors.bias = bias;
      tensors.multiplier = inputs.multiplier.data();
      if (float_input) {
        tensors.input_float = inputs.x_float.data();
      } else {
        tensors.input_uint8 = inputs.xq.data();
      }
      std::vector<uint8_t> out_uint8(count, 77);
      std::vector<float> out_float(count, -1.0F);
      if (parameters.float_output) {
        tensors.output_float = out_float.data();
      } else {
        tensors.output_uint8 = out_uint8.data();
      }
      fcnnzoo::quantized_conv_relu_pool_forward(*packed, call, parameters, tensors, threads);
      int64_t mismatches = 0;
      for (size_t index = 0; index < count; ++index) {
        const float actual = parameters.float_output ? out_float[index] : static_cast<float>(out_uint8[index]);
        mismatches += actual != expected[index] ? 1 : 0;
      }
      expect(mismatches == 0, std::to_string(mismatches) + " mismatches, " +
                                  (float_input ? "float" : "uint8") + " input, " + where);
    }
  } catch (const std::exception& error) {
    expect(false, std::string("exception: ") + error.what() + ", " + where);
  }
}

// Fills inputs for shape; extreme picks weights from {-128, -127, 127}
// and inputs from {0, 255}, and float inputs include NaN, infinities and
// values far outside the quantized range.
Inputs make_inputs(const ConvReluPoolShape& shape, const QuantizedParameters& parameters, bool extreme, bool has_bias,
                   std::mt19937& random) {
  Inputs inputs;
  const size_t input_count =
      static_cast<size_t>(shape.batch * shape.in_channels * shape.in_height * shape.in_width);
  const size_t weight_count =
      static_cast<size_t>(shape.out_channels * shape.in_channels * shape.kernel_height * shape.kernel_width);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> signed_byte(-128, 127);
  std::uniform_int_distribution<int> pick(0, 2);
  std::normal_distribution<float> normal(0.0F, 3.0F);
  std::uniform_int_distribution<int> special(0, 15);
  const float specials[] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(), 3.0e38F, -3.0e38F, 0.05F, 0.025F, -0.075F};
  for (size_t index = 0; index < input_count; ++index) {
    float value = normal(random);
    const int choice = special(random);
    if (choice < 8) {
      value = specials[choice];
    }
    if (extreme) {
      value = byte(random) < 128 ? -1e9F : 1e9F;
    }
    inputs.x_float.push_back(value);
    inputs.xq.push_back(static_cast<uint8_t>(quantize_naive(value, parameters.input_scale, parameters.input_zero_point)));
  }
  const int8_t extremes[] = {-128, -127, 127};
  for (size_t index = 0; index < weight_count; ++index) {
    inputs.weight.push_back(extreme ? extremes[pick(random)] : static_cast<int8_t>(signed_byte(random)));
  }
  const double taps = static_cast<double>(shape.in_channels * shape.kernel_height * shape.kernel_width);
  std::uniform_real_distribution<float> spread(0.5F, 1.5F);
  std::uniform_int_distribution<int32_t> bias_value(-5000, 5000);
  for (int64_t o = 0; o < shape.out_channels; ++o) {
    inputs.multiplier.push_back(spread(random) * static_cast<float>(120.0 / (127.0 * 128.0 * std::sqrt(taps) / 2)));
    if (has_bias) {
      inputs.bias.push_back(bias_value(random));
    }
  }
  return inputs;
}

ConvReluPoolShape make_shape(int64_t batch, int64_t in_channels, int64_t height, int64_t width, int64_t out_channels,
                             int64_t kernel, int64_t stride, int64_t padding, int64_t pool, int64_t pool_stride,
                             bool ceil_mode) {
  ConvReluPoolShape shape;
  shape.batch = batch;
  shape.in_channels = in_channels;
  shape.in_height = height;
  shape.in_width = width;
  shape.out_channels = out_channels;
  shape.kernel_height = kernel;
  shape.kernel_width = kernel;
  shape.stride_height = stride;
  shape.stride_width = stride;
  shape.padding_height = padding;
  shape.padding_width = padding;
  shape.pool_kernel_height = pool;
  shape.pool_kernel_width = pool;
  shape.pool_stride_height = pool_stride;
  shape.pool_stride_width = pool_stride;
  shape.ceil_mode = ceil_mode;
  return shape;
}

QuantizedParameters make_parameters(int input_zero_point, int output_zero_point, bool relu, bool float_output) {
  QuantizedParameters parameters;
  parameters.input_scale = 0.05;
  parameters.input_zero_point = input_zero_point;
  parameters.output_scale = 0.125F;
  parameters.output_zero_point = output_zero_point;
  parameters.relu = relu;
  parameters.float_output = float_output;
  return parameters;
}

void check_fixed_cases(std::mt19937& random) {
  struct Fixed {
    ConvReluPoolShape shape;
    bool extreme;
  };
  const Fixed cases[] = {
      {make_shape(2, 1, 28, 28, 32, 3, 1, 0, 2, 2, false), false},   // fcnn layer 1
      {make_shape(2, 32, 13, 13, 64, 3, 1, 0, 2, 2, false), false},  // fcnn layer 2
      {make_shape(3, 1600, 1, 1, 64, 1, 1, 0, 1, 1, false), false},  // fcnn linear 1
      {make_shape(3, 64, 1, 1, 10, 1, 1, 0, 1, 1, false), false},    // fcnn linear 2
      {make_shape(2, 5, 9, 10, 7, 3, 1, 0, 2, 2, false), false},
      {make_shape(1, 70, 6, 7, 65, 3, 1, 1, 2, 2, false), false},
      {make_shape(2, 6, 11, 11, 9, 3, 2, 1, 2, 2, false), false},
      {make_shape(2, 4, 12, 13, 12, 3, 1, 0, 3, 2, true), false},
      {make_shape(1, 2, 3, 3, 4, 3, 1, 3, 2, 2, true), false},
      {make_shape(1, 3, 7, 6, 5, 3, 1, 0, 1, 1, false), false},
      {make_shape(0, 8, 10, 10, 16, 3, 1, 0, 2, 2, false), false},
      {make_shape(2, 1600, 1, 1, 16, 1, 1, 0, 1, 1, false), true},
      {make_shape(1, 9, 5, 5, 18, 3, 1, 1, 2, 2, false), true},
      // One input channel and enough pooled columns for the pixel-lane kernel.
      {make_shape(2, 1, 15, 27, 20, 3, 1, 0, 2, 2, false), false},
      {make_shape(2, 1, 20, 30, 24, 3, 1, 0, 3, 2, true), false},
      {make_shape(1, 1, 29, 70, 16, 3, 2, 1, 2, 2, false), true},
  };
  for (const Fixed& fixed : cases) {
    for (const int zero_point : {0, 128, 255}) {
      for (const bool relu : {true, false}) {
        for (const bool float_output : {false, true}) {
          const QuantizedParameters parameters = make_parameters(zero_point, 255 - zero_point, relu, float_output);
          const Inputs inputs = make_inputs(fixed.shape, parameters, fixed.extreme, true, random);
          check(fixed.shape, parameters, inputs, 2);
        }
      }
    }
  }
}

void check_random_shapes(std::mt19937& random) {
  std::uniform_int_distribution<int> small(1, 5);
  std::uniform_int_distribution<int> channels(1, 40);
  std::uniform_int_distribution<int> size(1, 14);
  std::uniform_int_distribution<int> coin(0, 1);
  std::uniform_int_distribution<int> zero_point(0, 255);
  int accepted = 0;
  for (int attempt = 0; attempt < 400 && accepted < 60; ++attempt) {
    ConvReluPoolShape shape = make_shape(small(random) - 1, channels(random), size(random), size(random),
                                         channels(random), small(random), std::min(small(random), 3),
                                         small(random) - 1, small(random), small(random), coin(random) == 1);
    shape.kernel_width = small(random);
    shape.pool_kernel_width = small(random);
    try {
      fcnnzoo::validate_shape(shape);
    } catch (const std::invalid_argument&) {
      continue;
    }
    ++accepted;
    const QuantizedParameters parameters =
        make_parameters(zero_point(random), zero_point(random), coin(random) == 1, coin(random) == 1);
    const Inputs inputs = make_inputs(shape, parameters, false, coin(random) == 1, random);
    check(shape, parameters, inputs, 1 + coin(random));
  }
  expect(accepted >= 40, "too few random shapes were valid: " + std::to_string(accepted));
}

void check_rejections() {
  const std::vector<int8_t> weight(4 * 3 * 3 * 3, 1);
  const ConvReluPoolShape shape = make_shape(1, 3, 8, 8, 4, 3, 1, 0, 2, 2, false);
  const auto packed = fcnnzoo::pack_quantized_weights(shape, weight.data());
  auto rejects = [](auto function) {
    try {
      function();
    } catch (const std::invalid_argument&) {
      return true;
    }
    return false;
  };
  expect(rejects([&] { fcnnzoo::quantized_call_shape(*packed, 1, 2, 8, 8); }), "channel mismatch accepted");
  expect(rejects([&] { fcnnzoo::quantized_call_shape(*packed, 1, 3, 2, 8); }), "input smaller than kernel accepted");
  const std::vector<float> good(4, 0.5F);
  std::vector<float> negative(4, 0.5F);
  negative[3] = -1.0F;
  std::vector<float> not_finite(4, 0.5F);
  not_finite[1] = std::numeric_limits<float>::infinity();
  expect(rejects([&] { fcnnzoo::validate_quantized_parameters(make_parameters(0, 256, true, false), good.data(), 4); }),
         "output zero point 256 accepted");
  expect(rejects([&] { fcnnzoo::validate_quantized_parameters(make_parameters(-1, 0, true, false), good.data(), 4); }),
         "input zero point -1 accepted");
  expect(rejects([&] {
           fcnnzoo::validate_quantized_parameters(make_parameters(0, 0, true, false), negative.data(), 4);
         }),
         "negative multiplier accepted");
  expect(rejects([&] {
           fcnnzoo::validate_quantized_parameters(make_parameters(0, 0, true, false), not_finite.data(), 4);
         }),
         "infinite multiplier accepted");
  QuantizedParameters tiny = make_parameters(0, 0, true, false);
  tiny.input_scale = 1e-45;
  expect(rejects([&] { fcnnzoo::validate_quantized_parameters(tiny, good.data(), 4); }),
         "input scale whose inverse overflows accepted");
  ConvReluPoolShape bad = shape;
  bad.stride_height = 0;
  expect(rejects([&] { fcnnzoo::pack_quantized_weights(bad, weight.data()); }), "stride 0 accepted");

  const std::vector<int8_t> large(2, 127);
  const auto single = fcnnzoo::pack_quantized_weights(make_shape(1, 2, 1, 1, 1, 1, 1, 0, 1, 1, false), large.data());
  const int32_t near_limit = std::numeric_limits<int32_t>::max() - 1000;
  expect(!fcnnzoo::accumulator_fits_int32(*single, &near_limit, 0), "overflowing bias passed the int32 bound");
}

void check_kernel_name() {
  const std::vector<int8_t> weight(1, 1);
  const auto packed =
      fcnnzoo::pack_quantized_weights(make_shape(1, 1, 1, 1, 1, 1, 1, 0, 1, 1, false), weight.data());
  const std::string name = fcnnzoo::quantized_kernel_name(*packed);
  const char* capability = std::getenv("FCNNZOO_CPU_CAPABILITY");
  const std::string level = capability != nullptr ? capability : "";
  if (level == "default") {
    expect(name == "quantized_direct_oc8_generic", "kernel " + name + " at level default");
  } else if (level == "avx2") {
    expect(name == "quantized_direct_oc8_avx2", "kernel " + name + " at level avx2");
  }
  std::printf("quantized kernel: %s\n", name.c_str());

  // fcnn's first layer takes the pixel-lane kernel where the instruction set has one.
  const std::vector<int8_t> layer1_weight(32 * 9, 1);
  const ConvReluPoolShape layer1 = make_shape(1, 1, 28, 28, 32, 3, 1, 0, 2, 2, false);
  const auto layer1_packed = fcnnzoo::pack_quantized_weights(layer1, layer1_weight.data());
  const std::string layer1_name = fcnnzoo::quantized_call_kernel_name(*layer1_packed, layer1);
  if (name == "quantized_direct_oc16_vnni_avx512") {
    expect(layer1_name == "quantized_pixels16_vnni_avx512", "fcnn layer 1 runs " + layer1_name);
  } else {
    expect(layer1_name == name, "fcnn layer 1 runs " + layer1_name + " next to " + name);
  }
  const ConvReluPoolShape narrow = make_shape(1, 1, 6, 6, 32, 3, 1, 0, 2, 2, false);
  const std::string narrow_name = fcnnzoo::quantized_call_kernel_name(*layer1_packed, narrow);
  expect(narrow_name == name, "a 6x6 input runs " + narrow_name);
}

}  // namespace

int main() {
  std::mt19937 random(12345);
  check_kernel_name();
  check_fixed_cases(random);
  check_random_shapes(random);
  check_rejections();
  std::printf("%lld checks, %d failures\n", static_cast<long long>(g_checks), g_failures);
  return g_failures == 0 ? 0 : 1;
}
