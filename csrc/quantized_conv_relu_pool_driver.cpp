// Driver of the int8 kernels: chooses the instruction set, packs the
// weights once, validates each call, plans its tasks and scratch memory and
// runs them on the thread pool. The algorithm is described in
// quantized_conv_relu_pool_body.h.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "conv_relu_pool_kernels.h"
#include "cpu_features.h"
#include "quantized_conv_relu_pool.h"
#include "quantized_conv_relu_pool_plan.h"
#include "thread_pool.h"

namespace fcnnzoo {
namespace {

// Below this many multiply-adds per thread, waking another thread costs more
// than it saves. It is the float kernels' threshold (about 100 us of work)
// scaled by the 4x wider int8 vectors, so it is an estimate.
constexpr int64_t kMinMultiplyAddsPerThread = int64_t{262144} * 16 * 4;

// A task's packed input rows are kept below this many bytes, so that they
// stay in the L2 cache next to the weights.
constexpr int64_t kMaxTaskInputBytes = 256 * 1024;

// The most images of one task in linear mode (1x1 inputs and kernels).
constexpr int64_t kMaxLinearImages = 64;

// The pixel-lane kernel computes 16 lanes per pooled row segment and pool
// phase. It runs when that is at most this many times the convolution
// columns that the channel-lane kernel computes.
// NOTE: an estimate from fcnn's first layer only, where it computes 1.23
// times the columns in about 0.65 of the time; other shapes were not timed.
constexpr int64_t kMaxPixelLaneColumnRatio = 3;

constexpr int64_t kPixelLanes = 16;

constexpr int64_t kAlignment = 64;

int64_t ceil_divide(int64_t numerator, int64_t denominator) { return (numerator + denominator - 1) / denominator; }

int64_t round_up(int64_t value, int64_t multiple) { return ceil_divide(value, multiple) * multiple; }

struct AlignedDelete {
  void operator()(void* pointer) const { ::operator delete(pointer, std::align_val_t(kAlignment)); }
};

std::unique_ptr<unsigned char, AlignedDelete> allocate_aligned(int64_t bytes) {
  void* memory = ::operator new(static_cast<size_t>(std::max<int64_t>(bytes, 1)), std::align_val_t(kAlignment));
  return std::unique_ptr<unsigned char, AlignedDelete>(static_cast<unsigned char*>(memory));
}

// The widest variant this CPU has and FCNNZOO_CPU_CAPABILITY allows. An
// AVX-512 CPU without VNNI runs the AVX2 variant.
const QuantizedIsaFunctions& choose_isa() {
  const int level = cpu_capability_level();
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
  if (level >= 2 && cpu_supports_avx512_vnni()) {
    return kQuantizedAvx512VnniFunctions;
  }
  if (level >= 1 && cpu_supports_avx2_fma()) {
    return kQuantizedAvx2Functions;
  }
#else
  (void)level;
#endif
  return kQuantizedGenericFunctions;
}

std::string number_text(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.9g", value);
  return text;
}

void require_positive(const char* name, int64_t value) {
  if (value < 1) {
    throw std::invalid_argument(std::string(name) + " must be positive, got " + std::to_string(value) + ".");
  }
}

// Whether a call runs in linear mode: 1x1 inputs and kernels, no padding.
bool is_linear(const ConvReluPoolShape& shape) {
  return shape.in_height == 1 && shape.in_width == 1 && shape.kernel_height == 1 && shape.kernel_width == 1 &&
         shape.padding_height == 0 && shape.padding_width == 0;
}

// Whether the pixel-lane kernel of isa runs shape: kernel rows of at most
// four taps, few enough idle lanes and repeated columns, and input rows
// short enough for the kernel's int32 gather offsets.
bool uses_pixel_lanes(const QuantizedIsaFunctions& isa, const ConvReluPoolShape& shape,
                      const ConvReluPoolSizes& sizes) {
  if (isa.pixel_lane_tasks == nullptr || is_linear(shape) || shape.kernel_width * shape.in_channels > 4 ||
      shape.pool_kernel_width > kMaxPixelLanePhases) {
    return false;
  }
  const int64_t row_bytes = (shape.in_width + 2 * shape.padding_width) * shape.in_channels;
  if (row_bytes > std::numeric_limits<int32_t>::max() / 2) {
    return false;
  }
  const int64_t lanes = ceil_divide(sizes.pooled_width, kPixelLanes) * kPixelLanes * shape.pool_kernel_width;
  return lanes <= kMaxPixelLaneColumnRatio * sizes.used_conv_width;
}

// The input rows, in padded coordinates, that rows_per_task pooled rows read.
int64_t input_rows_per_task(const ConvReluPoolShape& shape, int64_t rows_per_task) {
  const int64_t conv_rows = (rows_per_task - 1) * shape.pool_stride_height + shape.pool_kernel_height;
  return (conv_rows - 1) * shape.stride_height + shape.kernel_height;
}

}  // namespace

std::shared_ptr<const QuantizedPackedWeights> pack_quantized_weights(const ConvReluPoolShape& geometry,
                                                                     const int8_t* weight) {
  require_positive("out_channels", geometry.out_channels);
  require_positive("in_channels", geometry.in_channels);
  require_positive("kernel_height", geometry.kernel_height);
  require_positive("kernel_width", geometry.kernel_width);
  require_positive("stride_height", geometry.stride_height);
  require_positive("stride_width", geometry.stride_width);
  require_positive("pool_kernel_height", geometry.pool_kernel_height);
  require_positive("pool_kernel_width", geometry.pool_kernel_width);
  require_positive("pool_stride_height", geometry.pool_stride_height);
  require_positive("pool_stride_width", geometry.pool_stride_width);
  if (geometry.padding_height < 0 || geometry.padding_width < 0) {
    throw std::invalid_argument("padding must not be negative, got (" + std::to_string(geometry.padding_height) +
                                ", " + std::to_string(geometry.padding_width) + ").");
  }
  // The smallest input that yields one pooled value checks the remaining
  // limits (sizes below 2^31, element counts) with the float kernel's rules.
  ConvReluPoolShape smallest = geometry;
  smallest.batch = 0;
  smallest.in_height = std::max<int64_t>(1, geometry.kernel_height - 2 * geometry.padding_height);
  smallest.in_width = std::max<int64_t>(1, geometry.kernel_width - 2 * geometry.padding_width);
  smallest.pool_kernel_height = 1;
  smallest.pool_kernel_width = 1;
  validate_shape(smallest);

  auto packed = std::make_shared<QuantizedPackedWeights>();
  packed->geometry = geometry;
  packed->isa = &choose_isa();
  const QuantizedIsaFunctions& isa = *packed->isa;
  packed->row_elements = round_up(geometry.kernel_width * geometry.in_channels, isa.group);
  packed->padded_channels = round_up(geometry.out_channels, isa.lanes);

  const int64_t taps = geometry.in_channels * geometry.kernel_height * geometry.kernel_width;
  packed->weight_sum.assign(static_cast<size_t>(geometry.out_channels), 0);
  packed->weight_abs_sum.assign(static_cast<size_t>(geometry.out_channels), 0);
  for (int64_t o = 0; o < geometry.out_channels; ++o) {
    for (int64_t tap = 0; tap < taps; ++tap) {
      const int64_t value = weight[o * taps + tap];
      packed->weight_sum[static_cast<size_t>(o)] += value;
      packed->weight_abs_sum[static_cast<size_t>(o)] += value < 0 ? -value : value;
    }
  }

  const int64_t elements = packed->padded_channels * geometry.kernel_height * packed->row_elements;
  auto memory = allocate_aligned(elements * isa.weight_bytes);
  isa.pack_weights(*packed, weight, memory.get());
  packed->packed = std::shared_ptr<void>(memory.release(), AlignedDelete());
  return packed;
}

std::string quantized_kernel_name(const QuantizedPackedWeights& packed) { return packed.isa->kernel_name; }

std::string quantized_call_kernel_name(const QuantizedPackedWeights& packed, const ConvReluPoolShape& shape) {
  const ConvReluPoolSizes sizes = validate_shape(shape);
  if (uses_pixel_lanes(*packed.isa, shape, sizes)) {
    return packed.isa->pixel_lane_kernel_name;
  }
  return packed.isa->kernel_name;
}

ConvReluPoolShape quantized_call_shape(const QuantizedPackedWeights& packed, int64_t batch, int64_t in_channels,
                                       int64_t in_height, int64_t in_width) {
  if (in_channels != packed.geometry.in_channels) {
    throw std::invalid_argument("the weight expects " + std::to_string(packed.geometry.in_channels) +
                                " input channels, but the input has " + std::to_string(in_channels) + ".");
  }
  ConvReluPoolShape shape = packed.geometry;
  shape.batch = batch;
  shape.in_height = in_height;
  shape.in_width = in_width;
  validate_shape(shape);
  return shape;
}

void validate_quantized_parameters(const QuantizedParameters& parameters, const float* multiplier,
                                   int64_t out_channels) {
  const struct {
    const char* name;
    double value;
  } scales[] = {{"input_scale", parameters.input_scale}, {"output_scale", parameters.output_scale}};
  for (const auto& scale : scales) {
    if (!(std::isfinite(scale.value) && scale.value > 0.0F)) {
      throw std::invalid_argument(std::string(scale.name) + " must be finite and positive, got " +
                                  number_text(scale.value) + ".");
    }
  }
  const struct {
    const char* name;
    int value;
  } zero_points[] = {{"input_zero_point", parameters.input_zero_point},
                     {"output_zero_point", parameters.output_zero_point}};
  for (const auto& zero_point : zero_points) {
    if (zero_point.value < 0 || zero_point.value > 255) {
      throw std::invalid_argument(std::string(zero_point.name) + " must be in [0, 255], got " +
                                  std::to_string(zero_point.value) + ".");
    }
  }
  if (!std::isfinite(static_cast<float>(1.0 / parameters.input_scale))) {
    throw std::invalid_argument("input_scale is too small: 1 / input_scale overflows float32, got " +
                                number_text(parameters.input_scale) + ".");
  }
  for (int64_t o = 0; o < out_channels; ++o) {
    if (!(std::isfinite(multiplier[o]) && multiplier[o] >= 0.0F)) {
      throw std::invalid_argument("multiplier must be finite and not negative, got " + number_text(multiplier[o]) +
                                  " for output channel " + std::to_string(o) + ".");
    }
  }
}

bool accumulator_fits_int32(const QuantizedPackedWeights& packed, const int32_t* bias, int input_zero_point) {
  const int64_t limit = std::numeric_limits<int32_t>::max();
  for (int64_t o = 0; o < packed.geometry.out_channels; ++o) {
    const int64_t bias_value = bias != nullptr ? bias[o] : 0;
    const int64_t abs_sum = packed.weight_abs_sum[static_cast<size_t>(o)];
    // The folded bias starts at bias - zx * sum(w), and each term adds at most 255 * |w|.
    const int64_t bound = (bias_value < 0 ? -bias_value : bias_value) + (input_zero_point + 255) * abs_sum;
    if (bound > limit) {
      return false;
    }
  }
  return true;
}

void quantized_conv_relu_pool_forward(const QuantizedPackedWeights& packed, const ConvReluPoolShape& shape,
                                      const QuantizedParameters& parameters, const QuantizedTensors& tensors,
                                      int thread_count) {
  const ConvReluPoolSizes sizes = validate_shape(shape);
  if (shape.batch == 0) {
    return;
  }
  const QuantizedIsaFunctions& isa = *packed.isa;
  const int64_t padded_channels = packed.padded_channels;

  std::vector<int32_t> folded_bias(static_cast<size_t>(padded_channels), 0);
  std::vector<float> multiplier(static_cast<size_t>(padded_channels), 0.0F);
  for (int64_t o = 0; o < shape.out_channels; ++o) {
    const int64_t bias = tensors.bias != nullptr ? tensors.bias[o] : 0;
    folded_bias[static_cast<size_t>(o)] =
        static_cast<int32_t>(bias - parameters.input_zero_point * packed.weight_sum[static_cast<size_t>(o)]);
    multiplier[static_cast<size_t>(o)] = tensors.multiplier[o];
  }

  QuantizedTaskPlan plan;
  plan.shape = shape;
  plan.sizes = sizes;
  plan.packed = &packed;
  plan.parameters = parameters;
  plan.tensors = tensors;
  plan.inverse_input_scale = static_cast<float>(1.0 / parameters.input_scale);
  plan.folded_bias = folded_bias.data();
  plan.multiplier = multiplier.data();
  plan.padded_width = shape.in_width + 2 * shape.padding_width;
  plan.row_elements = plan.padded_width * shape.in_channels;

  const int64_t multiply_adds = shape.batch * shape.out_channels * sizes.used_conv_height * sizes.used_conv_width *
                                shape.in_channels * shape.kernel_height * shape.kernel_width;
  const int threads = static_cast<int>(std::max<int64_t>(
      1, std::min<int64_t>({thread_count, 1 + multiply_adds / kMinMultiplyAddsPerThread, ThreadPool::kMaxThreads})));

  int64_t offset = 0;
  auto reserve = [&offset](int64_t bytes) {
    const int64_t start = offset;
    offset += round_up(bytes, kAlignment);
    return start;
  };
  const int64_t task_target = 4 * static_cast<int64_t>(threads);
  int64_t task_count = 0;
  plan.linear = is_linear(shape);
  if (plan.linear) {
    // Whole tiles of images per task, and at most kMaxLinearImages, so the
    // input rows and accumulators of a task stay in the L2 cache.
    const int64_t images = std::min(kMaxLinearImages, ceil_divide(shape.batch, task_target));
    plan.images_per_task = std::max<int64_t>(1, images);
    task_count = ceil_divide(shape.batch, plan.images_per_task);
    const int64_t values = plan.images_per_task * shape.in_channels;
    plan.input_offset = reserve(values * isa.input_bytes + isa.group * isa.input_bytes);
    plan.staging_offset = reserve(values);
    plan.row_max_offset = reserve(plan.images_per_task * padded_channels * 4);
    plan.requantized_offset = reserve(plan.images_per_task * padded_channels * 4);
  } else {
    // Whole images per task when there are enough of them; otherwise the
    // pooled rows are split so that every thread gets several tasks.
    int64_t row_groups = threads > 1 && shape.batch < task_target ? ceil_divide(task_target, shape.batch) : 1;
    row_groups = std::min(row_groups, sizes.pooled_height);
    int64_t rows_per_task = ceil_divide(sizes.pooled_height, row_groups);
    const int64_t row_bytes = plan.row_elements * isa.input_bytes;
    while (rows_per_task > 1 && input_rows_per_task(shape, rows_per_task) * row_bytes > kMaxTaskInputBytes) {
      rows_per_task = ceil_divide(rows_per_task, 2);
    }
    plan.rows_per_task = rows_per_task;
    plan.row_group_count = ceil_divide(sizes.pooled_height, rows_per_task);
    task_count = shape.batch * plan.row_group_count;

    // The kernels read up to group - 1 elements past a row's last pixel.
    const int64_t pooled_bytes = sizes.pooled_width * padded_channels * 4;
    plan.input_offset =
        reserve(input_rows_per_task(shape, rows_per_task) * row_bytes + isa.group * isa.input_bytes);
    plan.staging_offset = reserve(2 * shape.in_channels * shape.in_width);
    plan.row_max_offset = reserve(sizes.used_conv_width * padded_channels * 4);
    plan.pooled_offset = reserve(pooled_bytes);
    plan.requantized_offset = reserve(rows_per_task * pooled_bytes);
    plan.pixel_lanes = uses_pixel_lanes(isa, shape, sizes);
    if (plan.pixel_lanes) {
      // One 64-byte vector per input row, 16 pooled columns and phase.
      const int64_t vectors = input_rows_per_task(shape, rows_per_task) *
                              ceil_divide(sizes.pooled_width, kPixelLanes) * shape.pool_kernel_width;
      plan.expanded_offset = reserve(vectors * kAlignment);
    }
  }
  plan.scratch_stride = offset;
  auto scratch = allocate_aligned(plan.scratch_stride * threads);
  std::memset(scratch.get(), 0, static_cast<size_t>(plan.scratch_stride * threads));
  plan.scratch = scratch.get();

  const int64_t chunk_size = std::max<int64_t>(1, task_count / (8 * static_cast<int64_t>(threads)));
  ThreadPool::instance().run(threads, task_count, chunk_size, plan.pixel_lanes ? isa.pixel_lane_tasks : isa.tasks,
                            &plan);
}

}  // namespace fcnnzoo
