// Driver of the direct kernel: packs the weights, plans tasks and scratch
// memory, and runs the task function of one instruction set on the thread
// pool. The algorithm itself is described in conv_relu_pool_direct_body.h.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <new>

#include "conv_relu_pool_direct.h"
#include "conv_relu_pool_kernels.h"
#include "thread_pool.h"

namespace fcnnzoo {
namespace {

// Below this many vector multiply-adds per thread, waking another thread
// costs more than it saves (a condition-variable wake-up takes several
// microseconds); an estimate, not tuned per machine.
constexpr int64_t kMinVectorFmasPerThread = 16384;

// Row buffers larger than this many floats (64 KiB) would crowd the caches,
// so such tasks are split into more row groups.
constexpr int64_t kMaxRowBufferFloats = 16384;

// Scratch regions start on 64-byte boundaries (16 floats).
constexpr int64_t kScratchAlignmentFloats = 16;

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

// Packs weight (out_channels, in_channels * kh * kw) into
// [block][in_channel * kh * kw][lane] and bias into [block][lane], with
// zeros for the lanes past out_channels.
void pack_weights(const ConvReluPoolShape& shape, const float* weight, const float* bias, int64_t lanes,
                  int64_t block_count, float* packed_weight, float* packed_bias) {
  const int64_t taps = shape.in_channels * shape.kernel_height * shape.kernel_width;
  for (int64_t block = 0; block < block_count; ++block) {
    float* block_weight = packed_weight + block * taps * lanes;
    for (int64_t lane = 0; lane < lanes; ++lane) {
      const int64_t out_channel = block * lanes + lane;
      if (out_channel >= shape.out_channels) {
        for (int64_t tap = 0; tap < taps; ++tap) {
          block_weight[tap * lanes + lane] = 0.0f;
        }
        packed_bias[block * lanes + lane] = 0.0f;
        continue;
      }
      const float* source = weight + out_channel * taps;
      for (int64_t tap = 0; tap < taps; ++tap) {
        block_weight[tap * lanes + lane] = source[tap];
      }
      packed_bias[block * lanes + lane] = bias != nullptr ? bias[out_channel] : 0.0f;
    }
  }
}

void run_direct(const ConvReluPoolShape& shape, const ConvReluPoolSizes& sizes, const ConvReluPoolTensors& tensors,
                int thread_count, DirectVariantSize variant, TaskRangeFunction task_function) {
  const int64_t lanes = variant.lanes;
  if (shape.batch == 0) {
    return;
  }

  DirectPlan plan;
  plan.shape = shape;
  plan.sizes = sizes;
  plan.input = tensors.input;
  plan.output = tensors.output;
  plan.block_count = ceil_divide(shape.out_channels, lanes);
  plan.tile_count = ceil_divide(sizes.used_conv_width, variant.max_tile);

  const int64_t taps = shape.in_channels * shape.kernel_height * shape.kernel_width;
  const int64_t packed_weight_floats = round_up(plan.block_count * taps * lanes, kScratchAlignmentFloats);
  AlignedFloats packed(packed_weight_floats + plan.block_count * lanes);
  pack_weights(shape, tensors.weight, tensors.bias, lanes, plan.block_count, packed.data(),
               packed.data() + packed_weight_floats);
  plan.packed_weight = packed.data();
  plan.packed_bias = packed.data() + packed_weight_floats;

  // Use fewer threads when the work is too small to repay waking them.
  const int64_t planes = shape.batch * plan.block_count;
  const int64_t vector_fmas = planes * sizes.used_conv_height * sizes.used_conv_width * taps;
  const int64_t useful_threads = 1 + vector_fmas / kMinVectorFmasPerThread;
  const int threads = static_cast<int>(
      std::max<int64_t>(1, std::min<int64_t>({thread_count, useful_threads, ThreadPool::kMaxThreads})));

  // Split the pooled rows of each (image, block) plane when there are too few
  // planes to keep every thread busy, or when the row buffer would be large.
  const int64_t wanted_tasks = 4 * static_cast<int64_t>(threads);
  const int64_t row_floats = sizes.used_conv_width * lanes;
  int64_t row_groups = threads > 1 && planes < wanted_tasks ? ceil_divide(wanted_tasks, planes) : 1;
  row_groups = std::max(row_groups, ceil_divide(sizes.pooled_height * row_floats, kMaxRowBufferFloats));
  row_groups = std::min(row_groups, sizes.pooled_height);
  plan.rows_per_task = ceil_divide(sizes.pooled_height, row_groups);
  plan.row_group_count = ceil_divide(sizes.pooled_height, plan.rows_per_task);

  plan.copies_padded_image = shape.padding_height > 0 || shape.padding_width > 0;
  if (plan.copies_padded_image) {
    plan.source_height = (sizes.used_conv_height - 1) * shape.stride_height + shape.kernel_height;
    plan.source_width = (sizes.used_conv_width - 1) * shape.stride_width + shape.kernel_width;
    plan.image_scratch_floats =
        round_up(shape.in_channels * plan.source_height * plan.source_width, kScratchAlignmentFloats);
  } else {
    plan.source_height = shape.in_height;
    plan.source_width = shape.in_width;
    plan.image_scratch_floats = 0;
  }
  plan.row_scratch_floats = round_up(plan.rows_per_task * row_floats, kScratchAlignmentFloats);
  // The pooled buffer holds whole blocks of lanes positions for the transpose.
  const int64_t pooled_floats = round_up(plan.rows_per_task * sizes.pooled_width, lanes) * lanes;
  plan.scratch_stride = plan.image_scratch_floats + plan.row_scratch_floats + round_up(pooled_floats, kScratchAlignmentFloats);
  AlignedFloats scratch(plan.scratch_stride * threads);
  plan.scratch = scratch.data();
  std::unique_ptr<int64_t[]> cached_image(new int64_t[threads]);
  std::fill(cached_image.get(), cached_image.get() + threads, int64_t{-1});
  plan.cached_image = cached_image.get();

  const int64_t task_count = planes * plan.row_group_count;
  const int64_t chunk_size = std::max<int64_t>(1, task_count / (8 * static_cast<int64_t>(threads)));
  ThreadPool::instance().run(threads, task_count, chunk_size, task_function, &plan);
}

}  // namespace

#if defined(__x86_64__) || defined(__i386__)
void conv_relu_pool_direct_ocb16_avx512(const ConvReluPoolShape& shape, const ConvReluPoolSizes& sizes,
                                        const ConvReluPoolTensors& tensors, int thread_count) {
  run_direct(shape, sizes, tensors, thread_count, kDirectAvx512Size, direct_tasks_ocb16_avx512);
}

void conv_relu_pool_direct_ocb8_avx2(const ConvReluPoolShape& shape, const ConvReluPoolSizes& sizes,
                                     const ConvReluPoolTensors& tensors, int thread_count) {
  run_direct(shape, sizes, tensors, thread_count, kDirectAvx2Size, direct_tasks_ocb8_avx2);
}
#endif

void conv_relu_pool_direct_ocb4_generic(const ConvReluPoolShape& shape, const ConvReluPoolSizes& sizes,
                                        const ConvReluPoolTensors& tensors, int thread_count) {
  run_direct(shape, sizes, tensors, thread_count, kDirectGenericSize, direct_tasks_ocb4_generic);
}

}  // namespace fcnnzoo
