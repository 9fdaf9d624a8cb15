// The one place that chooses a kernel variant for the running CPU and shape.
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "conv_relu_pool_kernels.h"
#include "conv_relu_pool_plan.h"
#include "cpu_features.h"

namespace fcnnzoo {
namespace {

constexpr const char* kWinogradLimits =
    "3x3 kernels with stride 1, no dilation and no groups, and a 2x2 max pool with stride 2 and no padding whose "
    "windows fit the convolution output";
constexpr const char* kDirectLimits =
    "groups=1, a depthwise convolution, or a multiple of 16 output channels per group";

// In the order the default choice tries them: for each instruction set,
// widest first, Winograd before direct.
const ConvReluPoolKernel kKernels[] = {
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
    {"winograd_f2x3_oc16_w14_avx512", cpu_supports_avx512f, winograd_supports, winograd_preferred, kWinogradLimits,
     conv_relu_pool_winograd_f2x3_oc16_w14_avx512, &kAvx512Functions, true},
    {"direct_oc16_w14_avx512", cpu_supports_avx512f, direct_supports, nullptr, kDirectLimits, conv_relu_pool_direct_oc16_w14_avx512,
     &kAvx512Functions, false},
    {"winograd_f2x3_oc8_w12_avx2", cpu_supports_avx2_fma, winograd_supports, winograd_preferred, kWinogradLimits,
     conv_relu_pool_winograd_f2x3_oc8_w12_avx2, &kAvx2Functions, true},
    {"direct_oc8_w12_avx2", cpu_supports_avx2_fma, direct_supports, nullptr, kDirectLimits, conv_relu_pool_direct_oc8_w12_avx2,
     &kAvx2Functions, false},
#endif
    {"winograd_f2x3_oc4_w12_generic", cpu_supports_baseline, winograd_supports, winograd_preferred, kWinogradLimits,
     conv_relu_pool_winograd_f2x3_oc4_w12_generic, &kGenericFunctions, true},
    {"direct_oc4_w12_generic", cpu_supports_baseline, direct_supports, nullptr, kDirectLimits, conv_relu_pool_direct_oc4_w12_generic,
     &kGenericFunctions, false},
    {"reference", cpu_supports_baseline, nullptr, nullptr, "", conv_relu_pool_reference, nullptr, false},
};

// Instruction-set levels, ordered so that a level may run every variant of
// the levels below it.
enum class IsaLevel { kDefault = 0, kAvx2 = 1, kAvx512 = 2 };

IsaLevel kernel_level(const ConvReluPoolKernel& kernel) {
  if (kernel.is_supported == cpu_supports_avx512f) {
    return IsaLevel::kAvx512;
  }
  if (kernel.is_supported == cpu_supports_avx2_fma) {
    return IsaLevel::kAvx2;
  }
  return IsaLevel::kDefault;
}

// The highest level the variants may use: the one FCNNZOO_CPU_CAPABILITY
// names, or the widest one when it is unset or empty. Throws
// std::invalid_argument if the value is unknown or names instructions this
// CPU lacks, so that a test never passes on a level it did not run.
IsaLevel read_capability_limit() {
  const char* value = std::getenv("FCNNZOO_CPU_CAPABILITY");
  const std::string text = value != nullptr ? value : "";
  if (text.empty()) {
    return IsaLevel::kAvx512;
  }
  if (text == "default") {
    return IsaLevel::kDefault;
  }
  if (text == "avx2" || text == "avx512") {
    const bool avx512 = text == "avx512";
    if (!(avx512 ? cpu_supports_avx512f() : cpu_supports_avx2_fma())) {
      throw std::invalid_argument("FCNNZOO_CPU_CAPABILITY is '" + text + "', but this CPU lacks the " +
                                  (avx512 ? "AVX-512F" : "AVX2 and FMA") +
                                  " instructions; unset it or choose a level the CPU supports.");
    }
    return avx512 ? IsaLevel::kAvx512 : IsaLevel::kAvx2;
  }
  throw std::invalid_argument("FCNNZOO_CPU_CAPABILITY is '" + text +
                              "'; expected one of: avx512, avx2, default, or unset for the widest level.");
}

// Reads the environment once per process. An invalid value is reported on
// every call, because a static whose initializer throws stays uninitialized.
IsaLevel capability_limit() {
  static const IsaLevel limit = read_capability_limit();
  return limit;
}

bool is_enabled(const ConvReluPoolKernel& kernel) {
  return kernel.is_supported() && kernel_level(kernel) <= capability_limit();
}

bool supports(const ConvReluPoolKernel& kernel, const ConvReluPoolShape& shape, const ConvReluPoolSizes& sizes) {
  return kernel.supports == nullptr || kernel.supports(shape, sizes);
}

bool prefers(const ConvReluPoolKernel& kernel, const ConvReluPoolShape& shape, const ConvReluPoolSizes& sizes) {
  return kernel.preferred == nullptr || kernel.preferred(shape, sizes);
}

}  // namespace

const IsaFunctions& widest_isa_functions() {
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
  const IsaLevel limit = capability_limit();
  if (limit >= IsaLevel::kAvx512 && cpu_supports_avx512f()) {
    return kAvx512Functions;
  }
  if (limit >= IsaLevel::kAvx2 && cpu_supports_avx2_fma()) {
    return kAvx2Functions;
  }
#endif
  return kGenericFunctions;
}

int cpu_capability_level() { return static_cast<int>(capability_limit()); }

std::vector<std::string> supported_kernel_names() {
  std::vector<std::string> names;
  for (const ConvReluPoolKernel& kernel : kKernels) {
    if (is_enabled(kernel)) {
      names.emplace_back(kernel.name);
    }
  }
  return names;
}

const ConvReluPoolKernel& find_kernel(const std::string& name, const ConvReluPoolShape& shape,
                                      const ConvReluPoolSizes& sizes) {
  if (name.empty()) {
    for (const ConvReluPoolKernel& kernel : kKernels) {
      if (is_enabled(kernel) && supports(kernel, shape, sizes) && prefers(kernel, shape, sizes)) {
        return kernel;
      }
    }
    throw std::logic_error("no kernel variant accepts this shape, although the reference accepts every shape.");
  }

  for (const ConvReluPoolKernel& kernel : kKernels) {
    if (name != kernel.name) {
      continue;
    }
    if (!is_enabled(kernel)) {
      throw std::invalid_argument("kernel '" + name + "' needs instructions this CPU lacks or that " +
                                  "FCNNZOO_CPU_CAPABILITY excludes; use one of the names that " +
                                  "supported_kernels() returns.");
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
