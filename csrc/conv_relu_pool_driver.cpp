// Driver of the fast kernels: packs the weights, plans the tasks and the
// scratch memory of one call, and runs the task function of one instruction
// set on the thread pool. The algorithms are described in
// conv_relu_pool_direct_body.h and conv_relu_pool_winograd_body.h.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <new>

#include "conv_relu_pool_kernels.h"
#include "conv_relu_pool_packing.h"
#include "conv_relu_pool_plan.h"
#include "thread_pool.h"

namespace fcnnzoo {
namespace {

// Below this many vector multiply-adds per thread (about 100 us of work),
// waking another thread costs more than it saves. On the 2-core KVM guest
// this was developed on, a sleeping worker took tens of microseconds to join,
// and a second thread started to pay off between 150 and 250 us of
// single-thread work. Other machines may differ, so this is an estimate.
constexpr int64_t kMinVectorFmasPerThread = 262144;

// Per-task buffers larger than this many floats (256 KiB) would crowd the
// caches, so such tasks are split into more row groups.
constexpr int64_t kMaxTaskBufferFloats = 65536;

// Scratch regions start on 64-byte boundaries (16 floats).
constexpr int64_t kScratchAlignmentFloats = 16;

// Frequencies of a Winograd F(2x2, 3x3) transformed patch.
constexpr int64_t kWinogradFrequencies = 16;

int64_t ceil_divide(int64_t numerator, int64_t denominator) { return (numerator + denominator - 1) / denominator; }

int64_t round_up(int64_t value, int64_t multiple) { return ceil_divide(value, multiple) * multiple; }

// A 64-byte aligned float array, left uninitialized.
class AlignedFloats {
 public:
  explicit AlignedFloats(int64_t count)
      : data_(static_cast<float*>(::operator new(static_cast<size_t>(std::max<int64_t>(count, 1)) * sizeof(float),
                                                 std::align_val_t(64)))) {}
  ~AlignedFloats() { ::operator delete(data_, std::align_val_t(64)); }
  AlignedFloats(const AlignedFloats&) = delete;
  AlignedFloats& operator=(const AlignedFloats&) = delete;
  float* data() const { return data_; }

 private:
  float* data_;
};

// The memory a call owns while its tasks run.
struct CallMemory {
  std::shared_ptr<const PackedWeights> packed;
  std::unique_ptr<AlignedFloats> scratch;
  std::unique_ptr<int64_t[]> cache_keys;
};

// Returns the threads worth waking for vector_fmas multiply-adds.
int choose_thread_count(int thread_count, int64_t vector_fmas) {
  const int64_t useful_threads = 1 + vector_fmas / kMinVectorFmasPerThread;
  return static_cast<int>(
      std::max<int64_t>(1, std::min<int64_t>({thread_count, useful_threads, ThreadPool::kMaxThreads})));
}

// Sets rows_per_task and row_group_count. The pooled rows of each (image,
// block) plane are split when there are too few planes to keep every thread
// busy, or when a task's buffers would exceed kMaxTaskBufferFloats at
// floats_per_row floats per pooled row.
void split_rows(KernelPlan& plan, int threads, int64_t floats_per_row) {
  const int64_t pooled_height = plan.sizes.pooled_height;
  const int64_t planes = plan.shape.batch * plan.block_count;
  const int64_t wanted_tasks = 4 * static_cast<int64_t>(threads);
  int64_t row_groups = threads > 1 && planes < wanted_tasks ? ceil_divide(wanted_tasks, planes) : 1;
  row_groups = std::max(row_groups, ceil_divide(pooled_height * floats_per_row, kMaxTaskBufferFloats));
  row_groups = std::min(row_groups, pooled_height);
  plan.rows_per_task = ceil_divide(pooled_height, row_groups);
  plan.row_group_count = ceil_divide(pooled_height, plan.rows_per_task);
}

// Allocates the scratch memory and cache slots of threads workers. The
// caller sets the image, transform and product region sizes in plan first.
void allocate_scratch(KernelPlan& plan, int threads, int64_t lanes, CallMemory& memory) {
  plan.image_scratch_floats = round_up(plan.image_scratch_floats, kScratchAlignmentFloats);
  plan.transform_scratch_floats = round_up(plan.transform_scratch_floats, kScratchAlignmentFloats);
  plan.product_scratch_floats = round_up(plan.product_scratch_floats, kScratchAlignmentFloats);
  plan.row_scratch_floats =
      round_up(plan.rows_per_task * plan.sizes.used_conv_width * lanes, kScratchAlignmentFloats);
  // The pooled positions fill whole blocks of lanes for the transpose.
  const int64_t pooled_floats = round_up(plan.rows_per_task * plan.sizes.pooled_width, lanes) * lanes;
  plan.pooled_scratch_floats = round_up(pooled_floats, kScratchAlignmentFloats);
  // The winning rows and positions mirror the row maxima and pooled values.
  const int64_t index_floats =
      plan.indices != nullptr ? plan.row_scratch_floats + plan.pooled_scratch_floats : int64_t{0};
  plan.scratch_stride = plan.image_scratch_floats + plan.transform_scratch_floats + plan.product_scratch_floats +
                        plan.row_scratch_floats + plan.pooled_scratch_floats + index_floats;

  memory.scratch = std::make_unique<AlignedFloats>(plan.scratch_stride * threads);
  plan.scratch = memory.scratch->data();
  memory.cache_keys = std::make_unique<int64_t[]>(2 * static_cast<size_t>(threads));
  std::fill(memory.cache_keys.get(), memory.cache_keys.get() + 2 * threads, int64_t{-1});
  plan.cached_image = memory.cache_keys.get();
  plan.cached_transform = memory.cache_keys.get() + threads;
}

// Packs the weights for the direct kernel of isa and, with winograd, also
// their Winograd transform.
std::shared_ptr<PackedWeights> pack_for(const IsaFunctions& isa, bool winograd, const ConvReluPoolShape& shape,
                                        const float* weight, const float* bias) {
  const int64_t lanes = isa.lanes;
  const int64_t block_count = ceil_divide(shape.out_channels, lanes);
  const int64_t taps = group_in_channels(shape) * shape.kernel_height * shape.kernel_width;
  const int64_t packed_weight_floats = round_up(block_count * taps * lanes, kScratchAlignmentFloats);
  const int64_t packed_bias_floats = round_up(block_count * lanes, kScratchAlignmentFloats);
  const int64_t padded_channels = winograd ? round_up(shape.in_channels, lanes) : 0;
  const int64_t winograd_floats = block_count * kWinogradFrequencies * padded_channels * lanes;

  auto packed = std::make_shared<PackedWeights>();
  const int64_t floats = std::max<int64_t>(packed_weight_floats + packed_bias_floats + winograd_floats, 1);
  float* memory = static_cast<float*>(::operator new(static_cast<size_t>(floats) * sizeof(float), std::align_val_t(64)));
  packed->memory.reset(memory, [](float* data) { ::operator delete(data, std::align_val_t(64)); });
  isa.pack_weights(shape, weight, bias, memory, memory + packed_weight_floats);
  packed->out_channels = shape.out_channels;
  packed->in_channels = shape.in_channels;
  packed->kernel_height = shape.kernel_height;
  packed->kernel_width = shape.kernel_width;
  packed->packed_weight = memory;
  packed->packed_bias = memory + packed_weight_floats;
  if (winograd) {
    float* transformed = memory + packed_weight_floats + packed_bias_floats;
    isa.transform_weights(shape, memory, padded_channels, transformed);
    packed->winograd_weight = transformed;
    packed->padded_channels = padded_channels;
  }
  return packed;
}

// Whether packed holds weights of this shape for the isa's kernels, with the
// Winograd transform when winograd is set.
bool packed_fits(const PackedWeights* packed, const IsaFunctions& isa, bool winograd, const ConvReluPoolShape& shape) {
  return packed != nullptr && packed->kernel != nullptr && packed->kernel->isa == &isa &&
         (!winograd || packed->winograd_weight != nullptr) && packed->out_channels == shape.out_channels &&
         packed->in_channels == shape.in_channels && packed->kernel_height == shape.kernel_height &&
         packed->kernel_width == shape.kernel_width;
}

// Fills the fields every fast kernel needs, with the caller's packed
// weights when they fit and weights packed for this call otherwise.
void plan_common(KernelPlan& plan, const ConvReluPoolShape& shape, const ConvReluPoolSizes& sizes,
                 const ConvReluPoolTensors& tensors, const IsaFunctions& isa, bool winograd, CallMemory& memory) {
  plan.shape = shape;
  plan.sizes = sizes;
  plan.input = tensors.input;
  plan.output = tensors.output;
  plan.indices = tensors.indices;
  plan.block_count = ceil_divide(shape.out_channels, isa.lanes);

  const PackedWeights* packed = tensors.packed;
  if (!packed_fits(packed, isa, winograd, shape)) {
    memory.packed = pack_for(isa, winograd, shape, tensors.weight, tensors.bias);
    packed = memory.packed.get();
  }
  plan.packed_weight = packed->packed_weight;
  plan.packed_bias = packed->packed_bias;
  plan.winograd_weight = packed->winograd_weight;
  plan.padded_channels = packed->padded_channels;
}

void run_direct(const ConvReluPoolShape& shape, const ConvReluPoolSizes& sizes, const ConvReluPoolTensors& tensors,
                int thread_count, const IsaFunctions& isa) {
  if (shape.batch == 0) {
    return;
  }
  const int64_t lanes = isa.lanes;
  KernelPlan plan;
  CallMemory memory;
  plan_common(plan, shape, sizes, tensors, isa, false, memory);

  const int64_t taps = group_in_channels(shape) * shape.kernel_height * shape.kernel_width;
  const int64_t planes = shape.batch * plan.block_count;
  const int threads = choose_thread_count(thread_count, planes * sizes.used_conv_height * sizes.used_conv_width * taps);
  split_rows(plan, threads, sizes.used_conv_width * lanes);

  // A depthwise call always reads a channels-last copy of one block's channels.
  const bool depthwise = is_depthwise(shape);
  plan.copies_padded_image = depthwise || shape.padding_height > 0 || shape.padding_width > 0;
  if (plan.copies_padded_image) {
    plan.source_height =
        (sizes.used_conv_height - 1) * shape.stride_height + (shape.kernel_height - 1) * shape.dilation_height + 1;
    plan.source_width =
        (sizes.used_conv_width - 1) * shape.stride_width + (shape.kernel_width - 1) * shape.dilation_width + 1;
    plan.image_scratch_floats = (depthwise ? lanes : shape.in_channels) * plan.source_height * plan.source_width;
  } else {
    plan.source_height = shape.in_height;
    plan.source_width = shape.in_width;
  }
  allocate_scratch(plan, threads, lanes, memory);

  const int64_t task_count = planes * plan.row_group_count;
  const int64_t chunk_size = std::max<int64_t>(1, task_count / (8 * static_cast<int64_t>(threads)));
  ThreadPool::instance().run(threads, task_count, chunk_size,
                             plan.indices != nullptr ? isa.direct_tasks_indexed : isa.direct_tasks, &plan);
}

void run_winograd(const ConvReluPoolShape& shape, const ConvReluPoolSizes& sizes, const ConvReluPoolTensors& tensors,
                  int thread_count, const IsaFunctions& isa) {
  if (shape.batch == 0) {
    return;
  }
  const int64_t lanes = isa.lanes;
  const int64_t block_count = ceil_divide(shape.out_channels, lanes);

  KernelPlan plan;
  CallMemory memory;
  plan_common(plan, shape, sizes, tensors, isa, true, memory);
  const int64_t padded_channels = plan.padded_channels;

  const int64_t planes = shape.batch * block_count;
  const int64_t tiles = sizes.pooled_height * sizes.pooled_width;
  const int threads = choose_thread_count(thread_count, planes * tiles * kWinogradFrequencies * padded_channels);
  // The input transforms of a task are its largest buffer.
  split_rows(plan, threads, sizes.pooled_width * kWinogradFrequencies * padded_channels);

  // Each tile reads a 4x4 patch starting at even coordinates.
  plan.copies_padded_image = true;
  plan.source_height = sizes.used_conv_height + 2;
  plan.source_width = sizes.used_conv_width + 2;
  const int64_t tiles_per_task = plan.rows_per_task * sizes.pooled_width;
  plan.image_scratch_floats = plan.source_height * plan.source_width * padded_channels;
  plan.transform_scratch_floats = kWinogradFrequencies * tiles_per_task * padded_channels;
  // The products region also stages the channels-last copy of each image row.
  plan.product_scratch_floats =
      std::max(tiles_per_task * kWinogradFrequencies * lanes, lanes * round_up(plan.source_width, lanes));
  allocate_scratch(plan, threads, lanes, memory);

  // Blocks vary fastest, so consecutive tasks share their input transforms.
  // A chunk holds all blocks of one row group when there are enough row
  // groups to balance the threads, so no two workers transform the same one.
  const int64_t task_count = planes * plan.row_group_count;
  const int64_t row_group_tasks = shape.batch * plan.row_group_count;
  const int64_t chunk_size = row_group_tasks >= 4 * static_cast<int64_t>(threads)
                                 ? block_count
                                 : std::max<int64_t>(1, task_count / (4 * static_cast<int64_t>(threads)));
  ThreadPool::instance().run(threads, task_count, chunk_size,
                             plan.indices != nullptr ? isa.winograd_tasks_indexed : isa.winograd_tasks, &plan);
}

}  // namespace

std::shared_ptr<const PackedWeights> pack_weights_for(const ConvReluPoolKernel& kernel,
                                                      const ConvReluPoolShape& shape, const float* weight,
                                                      const float* bias) {
  if (kernel.isa == nullptr) {
    return nullptr;
  }
  std::shared_ptr<PackedWeights> packed = pack_for(*kernel.isa, kernel.winograd, shape, weight, bias);
  packed->kernel = &kernel;
  return packed;
}

bool direct_supports(const ConvReluPoolShape& shape, const ConvReluPoolSizes& /*sizes*/) {
  return shape.groups == 1 || is_depthwise(shape) || (shape.out_channels / shape.groups) % kGroupChannelMultiple == 0;
}

bool winograd_supports(const ConvReluPoolShape& shape, const ConvReluPoolSizes& sizes) {
  return shape.groups == 1 && shape.dilation_height == 1 && shape.dilation_width == 1 &&
         shape.pool_padding_height == 0 && shape.pool_padding_width == 0 && shape.kernel_height == 3 && shape.kernel_width == 3 && shape.stride_height == 1 && shape.stride_width == 1 &&
         shape.pool_kernel_height == 2 && shape.pool_kernel_width == 2 && shape.pool_stride_height == 2 &&
         shape.pool_stride_width == 2 && 2 * sizes.pooled_height <= sizes.conv_height &&
         2 * sizes.pooled_width <= sizes.conv_width;
}

bool winograd_preferred(const ConvReluPoolShape& shape, const ConvReluPoolSizes& sizes) {
  // With few input channels the transforms cost more than the saved
  // multiply-adds. On 28x28 images with 32 output channels (AVX-512, 2-core
  // AMD EPYC) the crossover lay between 4 and 8 input channels. Other CPUs
  // and shapes may differ, so 8 is an estimate.
  return winograd_supports(shape, sizes) && shape.in_channels >= 8;
}

#if defined(__x86_64__) || defined(__i386__)
void conv_relu_pool_direct_oc16_w14_avx512(const ConvReluPoolShape& shape, const ConvReluPoolSizes& sizes,
                                           const ConvReluPoolTensors& tensors, int thread_count) {
  run_direct(shape, sizes, tensors, thread_count, kAvx512Functions);
}

void conv_relu_pool_direct_oc8_w12_avx2(const ConvReluPoolShape& shape, const ConvReluPoolSizes& sizes,
                                        const ConvReluPoolTensors& tensors, int thread_count) {
  run_direct(shape, sizes, tensors, thread_count, kAvx2Functions);
}

void conv_relu_pool_winograd_f2x3_oc16_w14_avx512(const ConvReluPoolShape& shape, const ConvReluPoolSizes& sizes,
                                                  const ConvReluPoolTensors& tensors, int thread_count) {
  run_winograd(shape, sizes, tensors, thread_count, kAvx512Functions);
}

void conv_relu_pool_winograd_f2x3_oc8_w12_avx2(const ConvReluPoolShape& shape, const ConvReluPoolSizes& sizes,
                                               const ConvReluPoolTensors& tensors, int thread_count) {
  run_winograd(shape, sizes, tensors, thread_count, kAvx2Functions);
}
#endif

void conv_relu_pool_direct_oc4_w12_generic(const ConvReluPoolShape& shape, const ConvReluPoolSizes& sizes,
                                           const ConvReluPoolTensors& tensors, int thread_count) {
  run_direct(shape, sizes, tensors, thread_count, kGenericFunctions);
}

void conv_relu_pool_winograd_f2x3_oc4_w12_generic(const ConvReluPoolShape& shape, const ConvReluPoolSizes& sizes,
                                                  const ConvReluPoolTensors& tensors, int thread_count) {
  run_winograd(shape, sizes, tensors, thread_count, kGenericFunctions);
}

}  // namespace fcnnzoo
