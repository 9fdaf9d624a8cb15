// Python bindings: convert NumPy arrays to raw pointers, validate every
// shape and argument, and release the GIL while a kernel runs. Invalid input
// raises TypeError or ValueError naming the value.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "conv_relu_pool.h"
#include "conv_relu_pool_kernels.h"
#include "conv_relu_pool_packing.h"
#include "openmp_runtime.h"

namespace py = pybind11;

namespace fcnnzoo {
namespace {

using Pair = std::array<int64_t, 2>;

std::string shape_text(const py::array& array) {
  std::string text = "(";
  for (py::ssize_t axis = 0; axis < array.ndim(); ++axis) {
    text += (axis == 0 ? "" : ", ") + std::to_string(array.shape(axis));
  }
  return text + (array.ndim() == 1 ? ",)" : ")");
}

// Returns object as a float32, C-contiguous, aligned array of ndim
// dimensions; never copies, so a view of a torch tensor stays a view.
py::array require_float_array(const py::object& object, const char* name, py::ssize_t ndim) {
  if (!py::isinstance<py::array>(object)) {
    throw py::type_error(std::string(name) + " must be a numpy.ndarray of float32, got " +
                         std::string(py::str(py::type::of(object).attr("__name__"))) + ".");
  }
  py::array array = py::reinterpret_borrow<py::array>(object);
  if (!py::isinstance<py::array_t<float>>(array)) {
    throw py::type_error(std::string(name) + " must have dtype float32 in native byte order, got " +
                         std::string(py::str(array.dtype())) + ".");
  }
  if (array.ndim() != ndim) {
    throw py::value_error(std::string(name) + " must be a " + std::to_string(ndim) + "-D array, got shape " +
                          shape_text(array) + ".");
  }
  if ((array.flags() & py::array::c_style) == 0) {
    throw py::value_error(std::string(name) + " must be C-contiguous; call .contiguous() on the tensor first.");
  }
  if (reinterpret_cast<uintptr_t>(array.data()) % alignof(float) != 0) {
    throw py::value_error(std::string(name) + " is not aligned to 4 bytes; copy it first.");
  }
  return array;
}

// Returns object as a uint8, C-contiguous array of ndim dimensions, never copied.
py::array require_uint8_array(const py::object& object, const char* name, py::ssize_t ndim) {
  if (!py::isinstance<py::array>(object)) {
    throw py::type_error(std::string(name) + " must be a numpy.ndarray of uint8, got " +
                         std::string(py::str(py::type::of(object).attr("__name__"))) + ".");
  }
  py::array array = py::reinterpret_borrow<py::array>(object);
  if (!py::isinstance<py::array_t<uint8_t>>(array)) {
    throw py::type_error(std::string(name) + " must have dtype uint8, got " + std::string(py::str(array.dtype())) +
                         ".");
  }
  if (array.ndim() != ndim) {
    throw py::value_error(std::string(name) + " must be a " + std::to_string(ndim) + "-D array, got shape " +
                          shape_text(array) + ".");
  }
  if ((array.flags() & py::array::c_style) == 0) {
    throw py::value_error(std::string(name) + " must be C-contiguous; call .contiguous() on the tensor first.");
  }
  return array;
}

// Throws ValueError unless array has the given shape.
void require_shape(const py::array& array, const char* name, const std::array<int64_t, 4>& expected) {
  for (int axis = 0; axis < 4; ++axis) {
    if (array.shape(axis) != expected[static_cast<size_t>(axis)]) {
      throw py::value_error(std::string(name) + " must have shape (" + std::to_string(expected[0]) + ", " +
                            std::to_string(expected[1]) + ", " + std::to_string(expected[2]) + ", " +
                            std::to_string(expected[3]) + "), got " + shape_text(array) + ".");
    }
  }
}

// Throws ValueError when windows of pool_kernel positions do not fit uint8 indices.
void require_indexed_window(const ConvReluPoolShape& shape) {
  const int64_t window = shape.pool_kernel_height * shape.pool_kernel_width;
  if (window > kMaxIndexedWindow) {
    throw py::value_error("indices need a pool window of at most " + std::to_string(kMaxIndexedWindow) +
                          " positions, got pool_kernel=(" + std::to_string(shape.pool_kernel_height) + ", " +
                          std::to_string(shape.pool_kernel_width) + ").");
  }
}

// Indices from outside a forward call could point past the window; they are
// checked so that the kernels may trust them.
void require_indices_in_window(const py::array& indices, const ConvReluPoolShape& shape) {
  const int64_t window = shape.pool_kernel_height * shape.pool_kernel_width;
  const auto* data = static_cast<const uint8_t*>(indices.data());
  const py::ssize_t count = indices.size();
  for (py::ssize_t position = 0; position < count; ++position) {
    if (data[position] >= window) {
      throw py::value_error("indices must be below pool_kernel height * width = " + std::to_string(window) +
                            ", got " + std::to_string(data[position]) + " at flat position " +
                            std::to_string(position) + ".");
    }
  }
}

bool overlaps(const py::array& first, const py::array& second) {
  const auto* first_begin = static_cast<const char*>(first.data());
  const auto* second_begin = static_cast<const char*>(second.data());
  const auto* first_end = first_begin + first.nbytes();
  const auto* second_end = second_begin + second.nbytes();
  return first.nbytes() > 0 && second.nbytes() > 0 && first_begin < second_end && second_begin < first_end;
}

ConvReluPoolShape make_shape(int64_t batch, int64_t in_channels, int64_t in_height, int64_t in_width,
                             int64_t out_channels, int64_t kernel_height, int64_t kernel_width, Pair stride,
                             Pair padding, Pair pool_kernel, Pair pool_stride, bool ceil_mode, Pair dilation,
                             int64_t groups, Pair pool_padding) {
  ConvReluPoolShape shape;
  shape.batch = batch;
  shape.in_channels = in_channels;
  shape.in_height = in_height;
  shape.in_width = in_width;
  shape.out_channels = out_channels;
  shape.kernel_height = kernel_height;
  shape.kernel_width = kernel_width;
  shape.stride_height = stride[0];
  shape.stride_width = stride[1];
  shape.padding_height = padding[0];
  shape.padding_width = padding[1];
  shape.pool_kernel_height = pool_kernel[0];
  shape.pool_kernel_width = pool_kernel[1];
  shape.pool_stride_height = pool_stride[0];
  shape.pool_stride_width = pool_stride[1];
  shape.ceil_mode = ceil_mode;
  shape.dilation_height = dilation[0];
  shape.dilation_width = dilation[1];
  shape.groups = groups;
  shape.pool_padding_height = pool_padding[0];
  shape.pool_padding_width = pool_padding[1];
  return shape;
}

// The shape of a call given the input and weight shapes. Throws ValueError
// when the weight's input channels times groups differ from the input's.
ConvReluPoolShape shape_from_shapes(const std::array<int64_t, 4>& input_shape,
                                    const std::array<int64_t, 4>& weight_shape, Pair stride, Pair padding,
                                    Pair pool_kernel, Pair pool_stride, bool ceil_mode, Pair dilation, int64_t groups,
                                    Pair pool_padding) {
  if (groups >= 1 && weight_shape[1] * groups != input_shape[1]) {
    const std::string per_group = groups == 1 ? "" : " per group";
    const std::string with_groups = groups == 1 ? "" : " with groups=" + std::to_string(groups);
    throw py::value_error("weight_shape expects " + std::to_string(weight_shape[1]) + " input channels" + per_group +
                          " but input_shape has " + std::to_string(input_shape[1]) + with_groups + ".");
  }
  return make_shape(input_shape[0], input_shape[1], input_shape[2], input_shape[3], weight_shape[0], weight_shape[2],
                    weight_shape[3], stride, padding, pool_kernel, pool_stride, ceil_mode, dilation, groups,
                    pool_padding);
}

// The shape of a call on 4-D input and weight arrays. Throws ValueError when
// the weight's input channels times groups differ from the input's.
ConvReluPoolShape shape_from_arrays(const py::array& input, const py::array& weight, Pair stride, Pair padding,
                                    Pair pool_kernel, Pair pool_stride, bool ceil_mode, Pair dilation = {1, 1},
                                    int64_t groups = 1, Pair pool_padding = {0, 0}) {
  if (groups >= 1 && weight.shape(1) * groups != input.shape(1)) {
    throw py::value_error("weight expects " + std::to_string(weight.shape(1)) + " input channels (shape " +
                          shape_text(weight) + ") but input has " + std::to_string(input.shape(1)) + " (shape " +
                          shape_text(input) + ")" + (groups == 1 ? "" : " with groups=" + std::to_string(groups)) +
                          ".");
  }
  return make_shape(input.shape(0), input.shape(1), input.shape(2), input.shape(3), weight.shape(0), weight.shape(2),
                    weight.shape(3), stride, padding, pool_kernel, pool_stride, ceil_mode, dilation, groups,
                    pool_padding);
}

void require_thread_count(int num_threads) {
  if (num_threads < 1) {
    throw py::value_error("num_threads must be at least 1, got " + std::to_string(num_threads) + ".");
  }
}

std::string select_kernel(std::array<int64_t, 4> input_shape, std::array<int64_t, 4> weight_shape, Pair stride,
                          Pair padding, Pair pool_kernel, Pair pool_stride, bool ceil_mode, Pair dilation,
                          int64_t groups, Pair pool_padding) {
  const ConvReluPoolShape shape = shape_from_shapes(input_shape, weight_shape, stride, padding, pool_kernel,
                                                    pool_stride, ceil_mode, dilation, groups, pool_padding);
  const ConvReluPoolSizes sizes = validate_shape(shape);
  return find_kernel("", shape, sizes).name;
}

void conv_relu_pool_forward(const py::object& input_object, const py::object& weight_object,
                            const py::object& bias_object, const py::object& output_object, Pair stride,
                            Pair padding, Pair pool_kernel, Pair pool_stride, bool ceil_mode, int num_threads,
                            const std::string& kernel_name, const py::object& indices_object, Pair dilation,
                            int64_t groups, Pair pool_padding) {
  const py::array input = require_float_array(input_object, "input", 4);
  const py::array weight = require_float_array(weight_object, "weight", 4);
  py::array output = require_float_array(output_object, "output", 4);
  const bool has_bias = !bias_object.is_none();
  py::array bias;
  if (has_bias) {
    bias = require_float_array(bias_object, "bias", 1);
  }
  if (!output.writeable()) {
    throw py::value_error("output must be a writeable array.");
  }
  require_thread_count(num_threads);

  const ConvReluPoolShape shape =
      shape_from_arrays(input, weight, stride, padding, pool_kernel, pool_stride, ceil_mode, dilation, groups,
                        pool_padding);
  if (has_bias && bias.shape(0) != shape.out_channels) {
    throw py::value_error("bias must have out_channels=" + std::to_string(shape.out_channels) +
                          " elements, got shape " + shape_text(bias) + ".");
  }
  const ConvReluPoolSizes sizes = validate_shape(shape);

  const std::array<int64_t, 4> expected{shape.batch, shape.out_channels, sizes.pooled_height, sizes.pooled_width};
  require_shape(output, "output", expected);
  if (overlaps(output, input) || overlaps(output, weight) || (has_bias && overlaps(output, bias))) {
    throw py::value_error("output must not share memory with input, weight or bias.");
  }
  const bool has_indices = !indices_object.is_none();
  py::array indices;
  if (has_indices) {
    indices = require_uint8_array(indices_object, "indices", 4);
    require_shape(indices, "indices", expected);
    require_indexed_window(shape);
    if (!indices.writeable()) {
      throw py::value_error("indices must be a writeable array.");
    }
    if (overlaps(indices, input) || overlaps(indices, weight) || overlaps(indices, output) ||
        (has_bias && overlaps(indices, bias))) {
      throw py::value_error("indices must not share memory with input, weight, bias or output.");
    }
  }

  const ConvReluPoolKernel& kernel = find_kernel(kernel_name, shape, sizes);
  ConvReluPoolTensors tensors;
  tensors.input = static_cast<const float*>(input.data());
  tensors.weight = static_cast<const float*>(weight.data());
  tensors.bias = has_bias ? static_cast<const float*>(bias.data()) : nullptr;
  tensors.output = static_cast<float*>(output.mutable_data());
  tensors.indices = has_indices ? static_cast<uint8_t*>(indices.mutable_data()) : nullptr;

  py::gil_scoped_release release;
  kernel.forward(shape, sizes, tensors, num_threads);
}

void conv_relu_pool_conv_gradient_binding(const py::object& grad_output_object, const py::object& output_object,
                                          const py::object& indices_object, const py::object& grad_conv_object,
                                          std::array<int64_t, 4> input_shape, std::array<int64_t, 4> weight_shape,
                                          Pair stride, Pair padding, Pair pool_kernel, Pair pool_stride,
                                          bool ceil_mode, int num_threads, Pair dilation, int64_t groups,
                                          Pair pool_padding) {
  const py::array grad_output = require_float_array(grad_output_object, "grad_output", 4);
  const py::array output = require_float_array(output_object, "output", 4);
  const py::array indices = require_uint8_array(indices_object, "indices", 4);
  py::array grad_conv = require_float_array(grad_conv_object, "grad_conv", 4);
  if (!grad_conv.writeable()) {
    throw py::value_error("grad_conv must be a writeable array.");
  }
  require_thread_count(num_threads);
  const ConvReluPoolShape shape = shape_from_shapes(input_shape, weight_shape, stride, padding, pool_kernel,
                                                    pool_stride, ceil_mode, dilation, groups, pool_padding);
  const ConvReluPoolSizes sizes = validate_shape(shape);
  require_indexed_window(shape);
  const std::array<int64_t, 4> pooled{shape.batch, shape.out_channels, sizes.pooled_height, sizes.pooled_width};
  require_shape(grad_output, "grad_output", pooled);
  require_shape(output, "output", pooled);
  require_shape(indices, "indices", pooled);
  require_shape(grad_conv, "grad_conv", {shape.batch, shape.out_channels, sizes.conv_height, sizes.conv_width});
  if (overlaps(grad_conv, grad_output) || overlaps(grad_conv, output) || overlaps(grad_conv, indices)) {
    throw py::value_error("grad_conv must not share memory with grad_output, output or indices.");
  }

  const auto* grad_output_data = static_cast<const float*>(grad_output.data());
  const auto* output_data = static_cast<const float*>(output.data());
  const auto* indices_data = static_cast<const uint8_t*>(indices.data());
  auto* grad_conv_data = static_cast<float*>(grad_conv.mutable_data());
  require_indices_in_window(indices, shape);

  py::gil_scoped_release release;
  conv_relu_pool_conv_gradient(shape, sizes, grad_output_data, output_data, indices_data, grad_conv_data,
                               num_threads);
}

bool conv_relu_pool_backward_binding(const py::object& grad_output_object, const py::object& output_object,
                                     const py::object& indices_object, const py::object& input_object,
                                     const py::object& weight_object, const py::object& grad_input_object,
                                     const py::object& grad_weight_object, const py::object& grad_bias_object,
                                     Pair stride, Pair padding, Pair pool_kernel, Pair pool_stride, bool ceil_mode,
                                     int num_threads) {
  const py::array grad_output = require_float_array(grad_output_object, "grad_output", 4);
  const py::array output = require_float_array(output_object, "output", 4);
  const py::array indices = require_uint8_array(indices_object, "indices", 4);
  const py::array input = require_float_array(input_object, "input", 4);
  const py::array weight = require_float_array(weight_object, "weight", 4);
  require_thread_count(num_threads);
  const ConvReluPoolShape shape =
      shape_from_arrays(input, weight, stride, padding, pool_kernel, pool_stride, ceil_mode);
  const ConvReluPoolSizes sizes = validate_shape(shape);
  require_indexed_window(shape);
  const std::array<int64_t, 4> pooled{shape.batch, shape.out_channels, sizes.pooled_height, sizes.pooled_width};
  require_shape(grad_output, "grad_output", pooled);
  require_shape(output, "output", pooled);
  require_shape(indices, "indices", pooled);
  require_indices_in_window(indices, shape);

  // The gradients must be writeable and share memory with nothing else.
  std::vector<py::array> read_only{grad_output, output, indices, input, weight};
  std::vector<py::array> written;
  auto require_gradient = [&](const py::object& object, const char* name, py::ssize_t ndim,
                              const py::array& like) -> float* {
    if (object.is_none()) {
      return nullptr;
    }
    py::array array = require_float_array(object, name, ndim);
    for (py::ssize_t axis = 0; axis < ndim; ++axis) {
      if (array.shape(axis) != like.shape(axis)) {
        throw py::value_error(std::string(name) + " must have the shape " + shape_text(like) + ", got " +
                              shape_text(array) + ".");
      }
    }
    if (!array.writeable()) {
      throw py::value_error(std::string(name) + " must be a writeable array.");
    }
    for (const py::array& other : read_only) {
      if (overlaps(array, other)) {
        throw py::value_error(std::string(name) + " must not share memory with the arrays it is computed from.");
      }
    }
    for (const py::array& other : written) {
      if (overlaps(array, other)) {
        throw py::value_error(std::string(name) + " must not share memory with another gradient.");
      }
    }
    written.push_back(array);
    return static_cast<float*>(array.mutable_data());
  };
  ConvReluPoolBackwardTensors tensors;
  tensors.grad_input = require_gradient(grad_input_object, "grad_input", 4, input);
  tensors.grad_weight = require_gradient(grad_weight_object, "grad_weight", 4, weight);
  py::array bias_like = py::array_t<float>(shape.out_channels);
  tensors.grad_bias = require_gradient(grad_bias_object, "grad_bias", 1, bias_like);
  tensors.grad_output = static_cast<const float*>(grad_output.data());
  tensors.output = static_cast<const float*>(output.data());
  tensors.indices = static_cast<const uint8_t*>(indices.data());
  tensors.input = static_cast<const float*>(input.data());
  tensors.weight = static_cast<const float*>(weight.data());

  py::gil_scoped_release release;
  return conv_relu_pool_backward(shape, sizes, tensors, num_threads);
}

// A validated forward call whose weights are packed once and reused: the
// shape and arguments are checked and the kernel chosen when the plan is
// made, so each call only checks the arrays it receives.
class ForwardPlan {
 public:
  ForwardPlan(std::array<int64_t, 4> input_shape, std::array<int64_t, 4> weight_shape, Pair stride, Pair padding,
              Pair pool_kernel, Pair pool_stride, bool ceil_mode, const std::string& kernel_name, Pair dilation,
              int64_t groups, Pair pool_padding) {
    shape_ = shape_from_shapes(input_shape, weight_shape, stride, padding, pool_kernel, pool_stride, ceil_mode,
                               dilation, groups, pool_padding);
    sizes_ = validate_shape(shape_);
    weight_shape_ = weight_shape;
    kernel_ = &find_kernel(kernel_name, shape_, sizes_);
  }

  std::string kernel_name() const { return kernel_->name; }

  // Stores the weight and bias and packs them for the plan's kernel.
  void set_weights(const py::object& weight_object, const py::object& bias_object) {
    py::array weight = require_float_array(weight_object, "weight", 4);
    for (int axis = 0; axis < 4; ++axis) {
      if (weight.shape(axis) != weight_shape_[static_cast<size_t>(axis)]) {
        throw py::value_error("weight must have the planned shape, got " + shape_text(weight) + ".");
      }
    }
    py::array bias;
    if (!bias_object.is_none()) {
      bias = require_float_array(bias_object, "bias", 1);
      if (bias.shape(0) != shape_.out_channels) {
        throw py::value_error("bias must have out_channels=" + std::to_string(shape_.out_channels) +
                              " elements, got shape " + shape_text(bias) + ".");
      }
    }
    const float* bias_data = bias_object.is_none() ? nullptr : static_cast<const float*>(bias.data());
    packed_ = pack_weights_for(*kernel_, shape_, static_cast<const float*>(weight.data()), bias_data);
    weight_ = weight;
    bias_ = bias;
    has_bias_ = !bias_object.is_none();
    has_weights_ = true;
  }

  // Runs the kernel on input, whose shape must equal the planned one except
  // for the batch size, into output and optionally indices.
  void forward(const py::object& input_object, const py::object& output_object, const py::object& indices_object,
               int num_threads) {
    if (!has_weights_) {
      throw py::value_error("set_weights must be called before forward.");
    }
    const py::array input = require_float_array(input_object, "input", 4);
    py::array output = require_float_array(output_object, "output", 4);
    ConvReluPoolShape shape = shape_;
    shape.batch = input.shape(0);
    if (input.shape(1) != shape.in_channels || input.shape(2) != shape.in_height ||
        input.shape(3) != shape.in_width) {
      throw py::value_error("input must have the planned shape (N, " + std::to_string(shape.in_channels) + ", " +
                            std::to_string(shape.in_height) + ", " + std::to_string(shape.in_width) + "), got " +
                            shape_text(input) + ".");
    }
    require_thread_count(num_threads);
    const std::array<int64_t, 4> expected{shape.batch, shape.out_channels, sizes_.pooled_height,
                                          sizes_.pooled_width};
    require_shape(output, "output", expected);
    if (!output.writeable() || overlaps(output, input) || overlaps(output, weight_) ||
        (has_bias_ && overlaps(output, bias_))) {
      throw py::value_error("output must be writeable and must not share memory with input, weight or bias.");
    }
    py::array indices;
    const bool has_indices = !indices_object.is_none();
    if (has_indices) {
      indices = require_uint8_array(indices_object, "indices", 4);
      require_shape(indices, "indices", expected);
      require_indexed_window(shape);
      if (!indices.writeable() || overlaps(indices, input) || overlaps(indices, output)) {
        throw py::value_error("indices must be writeable and must not share memory with input or output.");
      }
    }

    ConvReluPoolTensors tensors;
    tensors.input = static_cast<const float*>(input.data());
    tensors.weight = static_cast<const float*>(weight_.data());
    tensors.bias = has_bias_ ? static_cast<const float*>(bias_.data()) : nullptr;
    tensors.output = static_cast<float*>(output.mutable_data());
    tensors.indices = has_indices ? static_cast<uint8_t*>(indices.mutable_data()) : nullptr;
    // A copy keeps the packed weights alive even if another thread calls
    // set_weights while this call runs without the GIL.
    const std::shared_ptr<const PackedWeights> packed = packed_;
    tensors.packed = packed.get();

    py::gil_scoped_release release;
    kernel_->forward(shape, sizes_, tensors, num_threads);
  }

 private:
  ConvReluPoolShape shape_;
  ConvReluPoolSizes sizes_;
  std::array<int64_t, 4> weight_shape_{};
  const ConvReluPoolKernel* kernel_ = nullptr;
  std::shared_ptr<const PackedWeights> packed_;
  py::array weight_;
  py::array bias_;
  bool has_bias_ = false;
  bool has_weights_ = false;
};

}  // namespace

// Defined in quantized_bindings.cpp.
void define_quantized_bindings(py::module_& module);

}  // namespace fcnnzoo

PYBIND11_MODULE(_C, module) {
  module.doc() = "fcnnzoo native kernels";

  module.def("conv_relu_pool_forward", &fcnnzoo::conv_relu_pool_forward, py::arg("input"), py::arg("weight"),
             py::arg("bias"), py::arg("output"), py::kw_only(), py::arg("stride"), py::arg("padding"),
             py::arg("pool_kernel"), py::arg("pool_stride"), py::arg("ceil_mode"), py::arg("num_threads"),
             py::arg("kernel") = std::string(), py::arg("indices") = py::none(),
             py::arg("dilation") = fcnnzoo::Pair{1, 1}, py::arg("groups") = 1,
             py::arg("pool_padding") = fcnnzoo::Pair{0, 0},
             R"doc(Write max_pool2d(relu(conv2d(input, weight, bias))) into output.

Args:
    input: float32 array (N, C, H, W), C-contiguous.
    weight: float32 array (out_channels, C / groups, kernel_height, kernel_width), C-contiguous.
    bias: float32 array (out_channels,) or None.
    output: writeable float32 array of the pooled shape, C-contiguous, not
        sharing memory with the other arrays.
    stride, padding, pool_kernel, pool_stride: (height, width) pairs.
    ceil_mode: round the pooled size up, as torch.nn.functional.max_pool2d does.
    num_threads: threads to use, the caller included (at least 1).
    kernel: a name from supported_kernels(); empty selects the first one
        in that list that supports the shape and is expected to be fastest.
    indices: None, or a writeable uint8 array of the output's shape that
        receives the position of each pooled value inside its window,
        row * pool_kernel_width + column: the first maximum in row-major
        order. Only meaningful where the output is positive. Needs windows
        of at most 256 positions.
    dilation: (height, width) spacing between kernel taps.
    groups: as in torch.nn.functional.conv2d. The fast kernels take
        groups=1, depthwise calls and multiples of 16 output channels per
        group; the reference kernel takes every value.
    pool_padding: (height, width) negative-infinity padding of the max
        pool, at most half of pool_kernel. Indices count window positions
        from the padded window's top-left corner.

Raises:
    TypeError: if an array is not a float32 numpy.ndarray.
    ValueError: if a shape, size or argument is invalid.
)doc");

  module.def("conv_relu_pool_conv_gradient", &fcnnzoo::conv_relu_pool_conv_gradient_binding, py::arg("grad_output"),
             py::arg("output"), py::arg("indices"), py::arg("grad_conv"), py::kw_only(), py::arg("input_shape"),
             py::arg("weight_shape"), py::arg("stride"), py::arg("padding"), py::arg("pool_kernel"),
             py::arg("pool_stride"), py::arg("ceil_mode"), py::arg("num_threads"),
             py::arg("dilation") = fcnnzoo::Pair{1, 1}, py::arg("groups") = 1,
             py::arg("pool_padding") = fcnnzoo::Pair{0, 0},
             R"doc(Write the gradient of conv2d's output into grad_conv.

Each pooled value whose output is positive sends its gradient to the
convolution output that won its window; all other entries become zero.

Args:
    grad_output: float32 array of the pooled shape.
    output, indices: the output and uint8 indices of a forward call.
    grad_conv: writeable float32 array (N, out_channels, conv_height, conv_width).
    input_shape, weight_shape: shapes of that call's input and weight.
    stride, padding, pool_kernel, pool_stride, ceil_mode: that call's arguments.
    num_threads: threads to use, the caller included (at least 1).
    dilation, groups, pool_padding: that call's arguments.

Raises:
    TypeError: if an array has the wrong type or dtype.
    ValueError: if a shape, argument or index is invalid.
)doc");

  module.def("conv_relu_pool_backward", &fcnnzoo::conv_relu_pool_backward_binding, py::arg("grad_output"),
             py::arg("output"), py::arg("indices"), py::arg("input"), py::arg("weight"), py::arg("grad_input"),
             py::arg("grad_weight"), py::arg("grad_bias"), py::kw_only(), py::arg("stride"), py::arg("padding"),
             py::arg("pool_kernel"), py::arg("pool_stride"), py::arg("ceil_mode"), py::arg("num_threads"),
             R"doc(Write the gradients of input, weight and bias of the fused op, and return True.

Covers calls without dilation, groups and pool padding only; for the others use
conv_relu_pool_conv_gradient and PyTorch's convolution backward.

Only the convolution outputs that won a window with a positive or NaN pooled
value get a gradient, so the work is proportional to the pooled output.
Returns False, leaving the gradients unspecified, when input or weight holds
NaN or infinity; conv_relu_pool_conv_gradient and PyTorch's convolution
backward then give the composite's NaN pattern.

Args:
    grad_output: float32 array of the pooled shape.
    output, indices: the output and uint8 indices of the forward call.
    input, weight: that call's float32 input and weight.
    grad_input, grad_weight, grad_bias: writeable float32 arrays shaped like
        the input, the weight and (out_channels,), or None to skip one.
    stride, padding, pool_kernel, pool_stride, ceil_mode: that call's arguments.
    num_threads: threads to use, the caller included (at least 1).

Raises:
    TypeError: if an array has the wrong type or dtype.
    ValueError: if a shape, argument or index is invalid.
)doc");

  py::class_<fcnnzoo::ForwardPlan>(module, "ForwardPlan", R"doc(A forward call planned once and run many times.

The shape and arguments are validated and the kernel chosen when the plan
is made, and set_weights packs the weight and bias for that kernel once;
forward then reuses them until set_weights is called again. The caller
must call set_weights again whenever the weight or bias values change.
)doc")
      .def(py::init<std::array<int64_t, 4>, std::array<int64_t, 4>, fcnnzoo::Pair, fcnnzoo::Pair, fcnnzoo::Pair,
                    fcnnzoo::Pair, bool, const std::string&, fcnnzoo::Pair, int64_t, fcnnzoo::Pair>(),
           py::arg("input_shape"), py::arg("weight_shape"), py::kw_only(), py::arg("stride"), py::arg("padding"),
           py::arg("pool_kernel"), py::arg("pool_stride"), py::arg("ceil_mode"), py::arg("kernel") = std::string(),
           py::arg("dilation") = fcnnzoo::Pair{1, 1}, py::arg("groups") = 1,
           py::arg("pool_padding") = fcnnzoo::Pair{0, 0})
      .def_property_readonly("kernel", &fcnnzoo::ForwardPlan::kernel_name, "Name of the kernel the plan runs.")
      .def("set_weights", &fcnnzoo::ForwardPlan::set_weights, py::arg("weight"), py::arg("bias"),
           "Keep the float32 weight and bias (or None) arrays and pack them for the kernel.")
      .def("forward", &fcnnzoo::ForwardPlan::forward, py::arg("input"), py::arg("output"), py::arg("indices"),
           py::arg("num_threads"),
           "Write the pooled output of input (any batch size, other sizes as planned) into output, and the "
           "window positions into indices unless it is None.");

  module.def("select_kernel", &fcnnzoo::select_kernel, py::arg("input_shape"), py::arg("weight_shape"),
             py::kw_only(), py::arg("stride"), py::arg("padding"), py::arg("pool_kernel"), py::arg("pool_stride"),
             py::arg("ceil_mode"), py::arg("dilation") = fcnnzoo::Pair{1, 1}, py::arg("groups") = 1,
             py::arg("pool_padding") = fcnnzoo::Pair{0, 0},
             R"doc(Return the name of the kernel conv_relu_pool_forward picks by default for these shapes.

Raises:
    ValueError: if a shape or argument is invalid.
)doc");

  module.def(
      "parallel_backend",
      [] { return fcnnzoo::loaded_openmp_runtime() != nullptr ? std::string("openmp") : std::string("pool"); },
      "Return where the kernels run their threads: 'openmp' on the OpenMP runtime the process loaded (PyTorch's), "
      "or 'pool' on fcnnzoo's own threads, when there is none or FCNNZOO_PARALLEL=pool.");

  module.def("supported_kernels", &fcnnzoo::supported_kernel_names,
             "Return the kernel names this CPU can run, in the order the default choice tries them.");

  fcnnzoo::define_quantized_bindings(module);
}
