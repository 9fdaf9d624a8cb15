// The int8 kernel for AVX2. vpmaddubsw would saturate its int16 sums of two
// uint8 x int8 products, so inputs and weights are widened to int16 when
// they are packed, and vpmaddwd multiplies pairs of them into exact int32
// sums. CMakeLists.txt compiles this file with the matching flags.
#include <immintrin.h>

#include "quantized_conv_relu_pool_body.h"

namespace fcnnzoo {
namespace {

struct Avx2Isa {
  using Input = int16_t;
  using Weight = int16_t;
  static constexpr int kLanes = 8;
  static constexpr int kGroup = 2;
  static constexpr int kMaxBlocks = 2;

  // Up to 12 accumulators, the weight vectors and a broadcast fit in the 16
  // ymm registers.
  static constexpr int max_pixels(int blocks) { return blocks == 1 ? 12 : 6; }

  template <int B, int P>
  static void conv_tile(const QuantizedTile& tile) {
    __m256i accumulators[P][B];
    for (int b = 0; b < B; ++b) {
      const __m256i bias = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tile.bias + b * kLanes));
      for (int p = 0; p < P; ++p) {
        accumulators[p][b] = bias;
      }
    }
    const auto* input = static_cast<const Input*>(tile.input);
    const auto* weight = static_cast<const Weight*>(tile.weight);
    for (int64_t kh = 0; kh < tile.kernel_rows; ++kh) {
      const Input* row = input + kh * tile.row_stride;
      for (int64_t group = 0; group < tile.groups_per_row; ++group) {
        __m256i weights[B];
        for (int b = 0; b < B; ++b) {
          weights[b] = _mm256_load_si256(reinterpret_cast<const __m256i*>(weight + b * kLanes * kGroup));
        }
        weight += B * kLanes * kGroup;
        const Input* column = row + group * kGroup;
        for (int p = 0; p < P; ++p) {
          int32_t two_inputs;
          std::memcpy(&two_inputs, column + p * tile.pixel_stride, sizeof two_inputs);
          const __m256i broadcast = _mm256_set1_epi32(two_inputs);
          for (int b = 0; b < B; ++b) {
            accumulators[p][b] = _mm256_add_epi32(accumulators[p][b], _mm256_madd_epi16(broadcast, weights[b]));
          }
        }
      }
    }
    if constexpr (P % 2 == 0) {
      if (tile.pool_pairs) {
        for (int p = 0; p < P / 2; ++p) {
          for (int b = 0; b < B; ++b) {
            accumulators[p][b] = _mm256_max_epi32(accumulators[2 * p][b], accumulators[2 * p + 1][b]);
          }
        }
      }
    }
    const int stored = tile.pool_pairs ? P / 2 : P;
    for (int p = 0; p < stored; ++p) {
      for (int b = 0; b < B; ++b) {
        auto* output = reinterpret_cast<__m256i*>(tile.output + p * tile.output_stride + b * kLanes);
        __m256i value = accumulators[p][b];
        if (tile.max_into_output) {
          value = _mm256_max_epi32(value, _mm256_loadu_si256(output));
        }
        _mm256_storeu_si256(output, value);
      }
    }
  }

  static void quantize(const float* values, int64_t count, float inverse_scale, float zero_point, uint8_t* output) {
    const __m256 inverse = _mm256_set1_ps(inverse_scale);
    const __m256 shift = _mm256_set1_ps(zero_point);
    const __m256 low = _mm256_setzero_ps();
    const __m256 high = _mm256_set1_ps(255.0F);
    const __m256i lane_numbers = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int64_t index = 0; index < count; index += kLanes) {
      // The last vector loads only the lanes inside count.
      const int remaining = static_cast<int>(std::min<int64_t>(kLanes, count - index));
      const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(remaining), lane_numbers);
      const __m256 scaled = _mm256_mul_ps(_mm256_maskload_ps(values + index, mask), inverse);
      __m256 shifted = _mm256_add_ps(_mm256_round_ps(scaled, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), shift);
      const __m256 nan = _mm256_cmp_ps(shifted, shifted, _CMP_UNORD_Q);
      shifted = _mm256_blendv_ps(shifted, shift, nan);
      shifted = _mm256_min_ps(_mm256_max_ps(shifted, low), high);
      const __m256i integers = _mm256_cvtps_epi32(shifted);
      const __m128i words =
          _mm_packs_epi32(_mm256_castsi256_si128(integers), _mm256_extracti128_si256(integers, 1));
      const __m128i bytes = _mm_packus_epi16(words, words);
      if (remaining == kLanes) {
        _mm_storel_epi64(reinterpret_cast<__m128i*>(output + index), bytes);
      } else {
        alignas(16) uint8_t lanes[16];
        _mm_store_si128(reinterpret_cast<__m128i*>(lanes), bytes);
        std::memcpy(output + index, lanes, static_cast<size_t>(remaining));
      }
    }
  }

  // count is a multiple of padded_channels, which is a multiple of kLanes.
  static void requantize(const int32_t* accumulators, const float* multiplier, int64_t count,
                         int64_t padded_channels, const QuantizedParameters& parameters, void* output) {
    const __m256 shift = _mm256_set1_ps(static_cast<float>(parameters.output_zero_point));
    const __m256 scale = _mm256_set1_ps(parameters.output_scale);
    const __m256 low = _mm256_setzero_ps();
    const __m256 high = _mm256_set1_ps(255.0F);
    const __m256i floor = _mm256_set1_epi32(parameters.relu ? 0 : std::numeric_limits<int32_t>::min());
    for (int64_t start = 0; start < count; start += padded_channels) {
      for (int64_t channel = 0; channel < padded_channels; channel += kLanes) {
        const int64_t index = start + channel;
        const __m256i accumulator = _mm256_max_epi32(
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(accumulators + index)), floor);
        const __m256 product = _mm256_mul_ps(_mm256_cvtepi32_ps(accumulator), _mm256_loadu_ps(multiplier + channel));
        __m256 q = _mm256_add_ps(_mm256_round_ps(product, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), shift);
        q = _mm256_min_ps(_mm256_max_ps(q, low), high);
        if (parameters.float_output) {
          _mm256_storeu_ps(static_cast<float*>(output) + index, _mm256_mul_ps(_mm256_sub_ps(q, shift), scale));
        } else {
          alignas(32) int32_t integers[kLanes];
          _mm256_store_si256(reinterpret_cast<__m256i*>(integers), _mm256_cvtps_epi32(q));
          uint8_t* destination = static_cast<uint8_t*>(output) + index;
          for (int lane = 0; lane < kLanes; ++lane) {
            destination[lane] = static_cast<uint8_t>(integers[lane]);
          }
        }
      }
    }
  }
};

void quantized_tasks_avx2(void* context, int64_t begin, int64_t end, int worker) {
  run_quantized_tasks<Avx2Isa>(context, begin, end, worker);
}

}  // namespace

const QuantizedIsaFunctions kQuantizedAvx2Functions{
    "quantized_direct_oc8_avx2", Avx2Isa::kLanes, Avx2Isa::kGroup, Avx2Isa::kMaxBlocks, sizeof(Avx2Isa::Input),
    sizeof(Avx2Isa::Weight), pack_weights_for_isa<Avx2Isa>, quantized_tasks_avx2, nullptr, nullptr};

}  // namespace fcnnzoo
