// The one place that chooses a kernel variant for the running CPU.
#include <stdexcept>
#include <string>
#include <vector>

#include "conv_relu_pool_kernels.h"
#include "cpu_features.h"

namespace fcnnzoo {
namespace {

// Fastest first; the first supported entry is the default.
const ConvReluPoolKernel kKernels[] = {
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
    {"direct_ocb16_avx512", cpu_supports_avx512f, conv_relu_pool_direct_ocb16_avx512},
    {"direct_ocb8_avx2", cpu_supports_avx2_fma, conv_relu_pool_direct_ocb8_avx2},
#endif
    {"direct_ocb4_generic", cpu_supports_baseline, conv_relu_pool_direct_ocb4_generic},
    {"reference", cpu_supports_baseline, conv_relu_pool_reference},
};

const ConvReluPoolKernel& default_kernel() {
  static const ConvReluPoolKernel* const chosen = [] {
    for (const ConvReluPoolKernel& kernel : kKernels) {
      if (kernel.is_supported()) {
        return &kernel;
      }
    }
    return &kKernels[0];
  }();
  return *chosen;
}

}  // namespace

std::vector<std::string> supported_kernel_names() {
  std::vector<std::string> names;
  for (const ConvReluPoolKernel& kernel : kKernels) {
    if (kernel.is_supported()) {
      names.emplace_back(kernel.name);
    }
  }
  return names;
}

const ConvReluPoolKernel& find_kernel(const std::string& name) {
  if (name.empty()) {
    return default_kernel();
  }
  for (const ConvReluPoolKernel& kernel : kKernels) {
    if (name == kernel.name) {
      if (!kernel.is_supported()) {
        throw std::invalid_argument("kernel '" + name + "' needs instructions this CPU lacks; use one of the names " +
                                    "that supported_kernels() returns.");
      }
      return kernel;
    }
  }
  std::string known;
  for (const ConvReluPoolKernel& kernel : kKernels) {
    known += known.empty() ? "" : ", ";
    known += kernel.name;
  }
  throw std::invalid_argument("unknown kernel '" + name + "'; expected one of: " + known + ".");
}

}  // namespace fcnnzoo
