// The one place that chooses a kernel variant for the running CPU and shape.
#include <stdexcept>
#include <string>
#include <vector>

#include "conv_relu_pool_kernels.h"
#include "cpu_features.h"

namespace fcnnzoo {
namespace {

constexpr const char* kWinogradLimits =
    "3x3 kernels with stride 1 and a 2x2 max pool with stride 2 whose windows fit the convolution output";

// In the order the default choice tries them: for each instruction set,
// widest first, Winograd before direct.
const ConvReluPoolKernel kKernels[] = {
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
    {"winograd_f2x3_oc16_w14_avx512", cpu_supports_avx512f, winograd_supports, winograd_preferred, kWinogradLimits,
     conv_relu_pool_winograd_f2x3_oc16_w14_avx512},
    {"direct_oc16_w14_avx512", cpu_supports_avx512f, nullptr, nullptr, "", conv_relu_pool_direct_oc16_w14_avx512},
    {"winograd_f2x3_oc8_w12_avx2", cpu_supports_avx2_fma, winograd_supports, winograd_preferred, kWinogradLimits,
     conv_relu_pool_winograd_f2x3_oc8_w12_avx2},
    {"direct_oc8_w12_avx2", cpu_supports_avx2_fma, nullptr, nullptr, "", conv_relu_pool_direct_oc8_w12_avx2},
#endif
    {"winograd_f2x3_oc4_w12_generic", cpu_supports_baseline, winograd_supports, winograd_preferred, kWinogradLimits,
     conv_relu_pool_winograd_f2x3_oc4_w12_generic},
    {"direct_oc4_w12_generic", cpu_supports_baseline, nullptr, nullptr, "", conv_relu_pool_direct_oc4_w12_generic},
    {"reference", cpu_supports_baseline, nullptr, nullptr, "", conv_relu_pool_reference},
};

bool supports(const ConvReluPoolKernel& kernel, const ConvReluPoolShape& shape, const ConvReluPoolSizes& sizes) {
  return kernel.supports == nullptr || kernel.supports(shape, sizes);
}

bool prefers(const ConvReluPoolKernel& kernel, const ConvReluPoolShape& shape, const ConvReluPoolSizes& sizes) {
  return kernel.preferred == nullptr || kernel.preferred(shape, sizes);
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

const ConvReluPoolKernel& find_kernel(const std::string& name, const ConvReluPoolShape& shape,
                                      const ConvReluPoolSizes& sizes) {
  if (name.empty()) {
    for (const ConvReluPoolKernel& kernel : kKernels) {
      if (kernel.is_supported() && supports(kernel, shape, sizes) && prefers(kernel, shape, sizes)) {
        return kernel;
      }
    }
    throw std::logic_error("no kernel variant accepts this shape, although the reference accepts every shape.");
  }

  for (const ConvReluPoolKernel& kernel : kKernels) {
    if (name != kernel.name) {
      continue;
    }
    if (!kernel.is_supported()) {
      throw std::invalid_argument("kernel '" + name + "' needs instructions this CPU lacks; use one of the names " +
                                  "that supported_kernels() returns.");
    }
    if (!supports(kernel, shape, sizes)) {
      throw std::invalid_argument("kernel '" + name + "' does not support this shape; it needs " +
                                  kernel.shape_limits + ".");
    }
    return kernel;
  }

  std::string known;
  for (const ConvReluPoolKernel& kernel : kKernels) {
    known += known.empty() ? "" : ", ";
    known += kernel.name;
  }
  throw std::invalid_argument("unknown kernel '" + name + "'; expected one of: " + known + ".");
}

}  // namespace fcnnzoo
