// The portable int8 kernel: plain C++ loops over uint8 inputs and int8
// weights, four input elements per group as in the VNNI kernel.
#include "quantized_conv_relu_pool_body.h"

namespace fcnnzoo {
namespace {

struct GenericIsa {
  using Input = uint8_t;
  using Weight = int8_t;
  static constexpr int kLanes = 8;
  static constexpr int kGroup = 4;
  static constexpr int kMaxBlocks = 2;

  static constexpr int max_pixels(int /*blocks*/) { return 4; }

  template <int B, int P>
  static void conv_tile(const QuantizedTile& tile) {
    constexpr int kChannels = B * kLanes;
    int32_t accumulators[P][kChannels];
    for (int p = 0; p < P; ++p) {
      for (int o = 0; o < kChannels; ++o) {
        accumulators[p][o] = tile.bias[o];
      }
    }
    const auto* input = static_cast<const Input*>(tile.input);
    const auto* weight = static_cast<const Weight*>(tile.weight);
    for (int64_t kh = 0; kh < tile.kernel_rows; ++kh) {
      const Input* row = input + kh * tile.row_stride;
      for (int64_t group = 0; group < tile.groups_per_row; ++group) {
        for (int p = 0; p < P; ++p) {
          const Input* x = row + p * tile.pixel_stride + group * kGroup;
          for (int o = 0; o < kChannels; ++o) {
            const Weight* w = weight + o * kGroup;
            accumulators[p][o] += x[0] * w[0] + x[1] * w[1] + x[2] * w[2] + x[3] * w[3];
          }
        }
        weight += kChannels * kGroup;
      }
    }
    if constexpr (P % 2 == 0) {
      if (tile.pool_pairs) {
        for (int p = 0; p < P / 2; ++p) {
          for (int o = 0; o < kChannels; ++o) {
            accumulators[p][o] = std::max(accumulators[2 * p][o], accumulators[2 * p + 1][o]);
          }
        }
      }
    }
    const int stored = tile.pool_pairs ? P / 2 : P;
    for (int p = 0; p < stored; ++p) {
      int32_t* output = tile.output + p * tile.output_stride;
      for (int o = 0; o < kChannels; ++o) {
        output[o] = tile.max_into_output ? std::max(output[o], accumulators[p][o]) : accumulators[p][o];
      }
    }
  }

  static void quantize(const float* values, int64_t count, float inverse_scale, float zero_point, uint8_t* output) {
    for (int64_t index = 0; index < count; ++index) {
      output[index] = quantize_value(values[index], inverse_scale, zero_point);
    }
  }

  static void requantize(const int32_t* accumulators, const float* multiplier, int64_t count,
                         int64_t padded_channels, const QuantizedParameters& parameters, void* output) {
    const auto zero_point = static_cast<float>(parameters.output_zero_point);
    for (int64_t index = 0; index < count; ++index) {
      const int q = requantize_value(accumulators[index], multiplier[index % padded_channels], zero_point,
                                     parameters.relu);
      if (parameters.float_output) {
        static_cast<float*>(output)[index] =
            static_cast<float>(q - parameters.output_zero_point) * parameters.output_scale;
      } else {
        static_cast<uint8_t*>(output)[index] = static_cast<uint8_t>(q);
      }
    }
  }
};

void quantized_tasks_generic(void* context, int64_t begin, int64_t end, int worker) {
  run_quantized_tasks<GenericIsa>(context, begin, end, worker);
}

}  // namespace

const QuantizedIsaFunctions kQuantizedGenericFunctions{
    "quantized_direct_oc8_generic", GenericIsa::kLanes, GenericIsa::kGroup, GenericIsa::kMaxBlocks,
    sizeof(GenericIsa::Input), sizeof(GenericIsa::Weight), pack_weights_for_isa<GenericIsa>,
    quantized_tasks_generic, nullptr, nullptr};

}  // namespace fcnnzoo
