// Weights packed once for a fast kernel and reused by its calls until the
// weights change. Not included by the per-instruction-set files: it uses the
// standard library, whose inline functions must not be compiled with
// AVX-512 flags (see conv_relu_pool_direct_body.h).
#pragma once

#include <cstdint>
#include <memory>

#include "conv_relu_pool.h"
#include "conv_relu_pool_kernels.h"

namespace fcnnzoo {

// The weights and bias of one layer in the layout of one kernel variant:
// [block][in_channel][kh][kw][lane] and [block][lane], plus the Winograd
// transform [block][frequency][padded channel][lane] for Winograd variants.
struct PackedWeights {
  const ConvReluPoolKernel* kernel = nullptr;
  int64_t out_channels = 0;
  int64_t in_channels = 0;
  int64_t kernel_height = 0;
  int64_t kernel_width = 0;
  std::shared_ptr<float> memory;
  const float* packed_weight = nullptr;
  const float* packed_bias = nullptr;
  const float* winograd_weight = nullptr;
  int64_t padded_channels = 0;
};

// Packs weight and bias (which may be null) of a layer of this shape for
// kernel. Returns null for variants that read the weights as they are.
std::shared_ptr<const PackedWeights> pack_weights_for(const ConvReluPoolKernel& kernel,
                                                      const ConvReluPoolShape& shape, const float* weight,
                                                      const float* bias);

}  // namespace fcnnzoo
