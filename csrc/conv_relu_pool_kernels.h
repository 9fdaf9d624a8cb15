// The kernel variants of the fused forward and the table that chooses among
// them. Every variant computes exactly max_pool2d(relu(conv2d(x))) on the
// tensors described by a validated ConvReluPoolShape.
#pragma once

#include <string>
#include <vector>

#include "conv_relu_pool.h"

namespace fcnnzoo {

using ConvReluPoolForward = void (*)(const ConvReluPoolShape& shape, const ConvReluPoolSizes& sizes,
                                     const ConvReluPoolTensors& tensors, int thread_count);

struct ConvReluPoolKernel {
  // Names say the algorithm, the output-channel block and the instruction
  // set, for example "direct_ocb16_avx512".
  const char* name;
  // Whether the CPU running this process can execute the variant.
  bool (*is_supported)();
  ConvReluPoolForward forward;
};

// Naive loops over every output element; slow, kept as a second opinion.
void conv_relu_pool_reference(const ConvReluPoolShape& shape, const ConvReluPoolSizes& sizes,
                              const ConvReluPoolTensors& tensors, int thread_count);

// Direct convolution vectorized over blocks of 16, 8 or 4 output channels.
void conv_relu_pool_direct_ocb16_avx512(const ConvReluPoolShape& shape, const ConvReluPoolSizes& sizes,
                                        const ConvReluPoolTensors& tensors, int thread_count);
void conv_relu_pool_direct_ocb8_avx2(const ConvReluPoolShape& shape, const ConvReluPoolSizes& sizes,
                                     const ConvReluPoolTensors& tensors, int thread_count);
void conv_relu_pool_direct_ocb4_generic(const ConvReluPoolShape& shape, const ConvReluPoolSizes& sizes,
                                        const ConvReluPoolTensors& tensors, int thread_count);

// Names of the variants this CPU supports, the default (fastest) first.
std::vector<std::string> supported_kernel_names();

// The variant called name, or the default one when name is empty.
// Throws std::invalid_argument if the name is unknown or this CPU lacks the
// instructions it needs.
const ConvReluPoolKernel& find_kernel(const std::string& name);

}  // namespace fcnnzoo
