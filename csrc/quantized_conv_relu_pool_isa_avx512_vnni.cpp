// The int8 kernel for AVX-512 VNNI: vpdpbusd multiplies four uint8 inputs
// by four int8 weights and adds the sum to an int32 lane, exactly and with
// wraparound. CMakeLists.txt compiles this file with the matching flags
// (AVX-512F, BW, VL and VNNI).
#include <immintrin.h>

#include "quantized_conv_relu_pool_body.h"

// GCC 12 reports the _mm512_undefined_* idiom inside its own intrinsics
// headers as maybe uninitialized when it inlines them at -O1.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace fcnnzoo {
namespace {

// Narrows 16 int32 lanes in [0, 255] to bytes and stores the lanes in mask.
// A masked vpmovdb to memory runs many times slower on AMD Zen 4 than
// narrowing in a register and a masked byte store, and the empty asm keeps
// GCC from fusing the two back into that instruction.
inline void store_bytes_masked(uint8_t* destination, __mmask16 mask, __m512i values) {
  __m128i bytes = _mm512_cvtepi32_epi8(values);
  __asm__("" : "+v"(bytes));
  _mm_mask_storeu_epi8(destination, mask, bytes);
}

struct Avx512VnniIsa {
  using Input = uint8_t;
  using Weight = int8_t;
  static constexpr int kLanes = 16;
  static constexpr int kGroup = 4;
  static constexpr int kMaxBlocks = 4;

  // Up to 28 accumulators, the weight vectors and a broadcast fit in the 32
  // zmm registers.
  static constexpr int max_pixels(int blocks) { return blocks == 1 ? 16 : (blocks == 2 ? 14 : (blocks == 3 ? 8 : 6)); }

  template <int B, int P>
  static void conv_tile(const QuantizedTile& tile) {
    __m512i accumulators[P][B];
    for (int b = 0; b < B; ++b) {
      const __m512i bias = _mm512_loadu_si512(tile.bias + b * kLanes);
      for (int p = 0; p < P; ++p) {
        accumulators[p][b] = bias;
      }
    }
    const auto* input = static_cast<const Input*>(tile.input);
    const auto* weight = static_cast<const Weight*>(tile.weight);
    for (int64_t kh = 0; kh < tile.kernel_rows; ++kh) {
      const Input* row = input + kh * tile.row_stride;
      for (int64_t group = 0; group < tile.groups_per_row; ++group) {
        __m512i weights[B];
        for (int b = 0; b < B; ++b) {
          weights[b] = _mm512_load_si512(weight + b * kLanes * kGroup);
        }
        weight += B * kLanes * kGroup;
        const Input* column = row + group * kGroup;
        for (int p = 0; p < P; ++p) {
          int32_t four_inputs;
          std::memcpy(&four_inputs, column + p * tile.pixel_stride, sizeof four_inputs);
          const __m512i broadcast = _mm512_set1_epi32(four_inputs);
          for (int b = 0; b < B; ++b) {
            accumulators[p][b] = _mm512_dpbusd_epi32(accumulators[p][b], broadcast, weights[b]);
          }
        }
      }
    }
    if constexpr (P % 2 == 0) {
      if (tile.pool_pairs) {
        for (int p = 0; p < P / 2; ++p) {
          for (int b = 0; b < B; ++b) {
            accumulators[p][b] = _mm512_max_epi32(accumulators[2 * p][b], accumulators[2 * p + 1][b]);
          }
        }
      }
    }
    const int stored = tile.pool_pairs ? P / 2 : P;
    for (int p = 0; p < stored; ++p) {
      for (int b = 0; b < B; ++b) {
        int32_t* output = tile.output + p * tile.output_stride + b * kLanes;
        __m512i value = accumulators[p][b];
        if (tile.max_into_output) {
          value = _mm512_max_epi32(value, _mm512_loadu_si512(output));
        }
        _mm512_storeu_si512(output, value);
      }
    }
  }

  static void quantize(const float* values, int64_t count, float inverse_scale, float zero_point, uint8_t* output) {
    const __m512 inverse = _mm512_set1_ps(inverse_scale);
    const __m512 shift = _mm512_set1_ps(zero_point);
    const __m512 low = _mm512_setzero_ps();
    const __m512 high = _mm512_set1_ps(255.0F);
    for (int64_t index = 0; index < count; index += kLanes) {
      // The last vector loads and stores only the lanes inside count.
      const int64_t remaining = std::min<int64_t>(kLanes, count - index);
      const auto mask = static_cast<__mmask16>((1U << remaining) - 1U);
      const __m512 scaled = _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, values + index), inverse);
      __m512 shifted =
          _mm512_add_ps(_mm512_roundscale_ps(scaled, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), shift);
      const __mmask16 nan = _mm512_cmp_ps_mask(shifted, shifted, _CMP_UNORD_Q);
      shifted = _mm512_mask_mov_ps(shifted, nan, shift);
      shifted = _mm512_min_ps(_mm512_max_ps(shifted, low), high);
      store_bytes_masked(output + index, mask, _mm512_cvtps_epi32(shifted));
    }
  }

  // count is a multiple of padded_channels, which is a multiple of kLanes.
  static void requantize(const int32_t* accumulators, const float* multiplier, int64_t count,
                         int64_t padded_channels, const QuantizedParameters& parameters, void* output) {
    const __m512 shift = _mm512_set1_ps(static_cast<float>(parameters.output_zero_point));
    const __m512 scale = _mm512_set1_ps(parameters.output_scale);
    const __m512 low = _mm512_setzero_ps();
    const __m512 high = _mm512_set1_ps(255.0F);
    const __m512i floor = _mm512_set1_epi32(parameters.relu ? 0 : std::numeric_limits<int32_t>::min());
    for (int64_t start = 0; start < count; start += padded_channels) {
      for (int64_t channel = 0; channel < padded_channels; channel += kLanes) {
        const int64_t index = start + channel;
        const __m512i accumulator = _mm512_max_epi32(_mm512_loadu_si512(accumulators + index), floor);
        const __m512 product = _mm512_mul_ps(_mm512_cvtepi32_ps(accumulator), _mm512_loadu_ps(multiplier + channel));
        __m512 q = _mm512_add_ps(_mm512_roundscale_ps(product, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), shift);
        q = _mm512_min_ps(_mm512_max_ps(q, low), high);
        if (parameters.float_output) {
          _mm512_storeu_ps(static_cast<float*>(output) + index, _mm512_mul_ps(_mm512_sub_ps(q, shift), scale));
        } else {
          _mm_storeu_si128(reinterpret_cast<__m128i*>(static_cast<uint8_t*>(output) + index),
                           _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(q)));
        }
      }
    }
  }
};

void quantized_tasks_avx512_vnni(void* context, int64_t begin, int64_t end, int worker) {
  run_quantized_tasks<Avx512VnniIsa>(context, begin, end, worker);
}

}  // namespace
}  // namespace fcnnzoo

#include "quantized_conv_relu_pool_pixel_lanes_vnni.h"

namespace fcnnzoo {

const QuantizedIsaFunctions kQuantizedAvx512VnniFunctions{
    "quantized_direct_oc16_vnni_avx512", Avx512VnniIsa::kLanes, Avx512VnniIsa::kGroup, Avx512VnniIsa::kMaxBlocks,
    sizeof(Avx512VnniIsa::Input), sizeof(Avx512VnniIsa::Weight), pack_weights_for_isa<Avx512VnniIsa>,
    quantized_tasks_avx512_vnni, run_pixel_lane_tasks,
    "quantized_pixels16_vnni_avx512"};

}  // namespace fcnnzoo
