// Python bindings: convert NumPy arrays to raw pointers, validate every
// shape and argument, and release the GIL while a kernel runs. Invalid input
// raises TypeError or ValueError naming the value.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cstdint>
#include <string>

#include "conv_relu_pool.h"
#include "conv_relu_pool_kernels.h"

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

bool overlaps(const py::array& first, const py::array& second) {
  const auto* first_begin = static_cast<const char*>(first.data());
  const auto* second_begin = static_cast<const char*>(second.data());
  const auto* first_end = first_begin + first.nbytes();
  const auto* second_end = second_begin + second.nbytes();
  return first.nbytes() > 0 && second.nbytes() > 0 && first_begin < second_end && second_begin < first_end;
}

ConvReluPoolShape make_shape(int64_t batch, int64_t in_channels, int64_t in_height, int64_t in_width,
                             int64_t out_channels, int64_t kernel_height, int64_t kernel_width, Pair stride,
                             Pair padding, Pair pool_kernel, Pair pool_stride, bool ceil_mode) {
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
  return shape;
}

std::string select_kernel(std::array<int64_t, 4> input_shape, std::array<int64_t, 4> weight_shape, Pair stride,
                          Pair padding, Pair pool_kernel, Pair pool_stride, bool ceil_mode) {
  if (weight_shape[1] != input_shape[1]) {
    throw py::value_error("weight_shape expects " + std::to_string(weight_shape[1]) +
                          " input channels but input_shape has " + std::to_string(input_shape[1]) + ".");
  }
  const ConvReluPoolShape shape =
      make_shape(input_shape[0], input_shape[1], input_shape[2], input_shape[3], weight_shape[0], weight_shape[2],
                 weight_shape[3], stride, padding, pool_kernel, pool_stride, ceil_mode);
  const ConvReluPoolSizes sizes = validate_shape(shape);
  return find_kernel("", shape, sizes).name;
}

void conv_relu_pool_forward(const py::object& input_object, const py::object& weight_object,
                            const py::object& bias_object, const py::object& output_object, Pair stride,
                            Pair padding, Pair pool_kernel, Pair pool_stride, bool ceil_mode, int num_threads,
                            const std::string& kernel_name) {
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
  if (num_threads < 1) {
    throw py::value_error("num_threads must be at least 1, got " + std::to_string(num_threads) + ".");
  }

  const ConvReluPoolShape shape =
      make_shape(input.shape(0), input.shape(1), input.shape(2), input.shape(3), weight.shape(0), weight.shape(2),
                 weight.shape(3), stride, padding, pool_kernel, pool_stride, ceil_mode);
  if (weight.shape(1) != shape.in_channels) {
    throw py::value_error("weight expects " + std::to_string(weight.shape(1)) + " input channels (shape " +
                          shape_text(weight) + ") but input has " + std::to_string(shape.in_channels) +
                          " (shape " + shape_text(input) + ").");
  }
  if (has_bias && bias.shape(0) != shape.out_channels) {
    throw py::value_error("bias must have out_channels=" + std::to_string(shape.out_channels) +
                          " elements, got shape " + shape_text(bias) + ".");
  }
  const ConvReluPoolSizes sizes = validate_shape(shape);

  const std::array<int64_t, 4> expected{shape.batch, shape.out_channels, sizes.pooled_height, sizes.pooled_width};
  for (int axis = 0; axis < 4; ++axis) {
    if (output.shape(axis) != expected[static_cast<size_t>(axis)]) {
      throw py::value_error("output must have shape (" + std::to_string(expected[0]) + ", " +
                            std::to_string(expected[1]) + ", " + std::to_string(expected[2]) + ", " +
                            std::to_string(expected[3]) + "), got " + shape_text(output) + ".");
    }
  }
  if (overlaps(output, input) || overlaps(output, weight) || (has_bias && overlaps(output, bias))) {
    throw py::value_error("output must not share memory with input, weight or bias.");
  }

  const ConvReluPoolKernel& kernel = find_kernel(kernel_name, shape, sizes);
  ConvReluPoolTensors tensors;
  tensors.input = static_cast<const float*>(input.data());
  tensors.weight = static_cast<const float*>(weight.data());
  tensors.bias = has_bias ? static_cast<const float*>(bias.data()) : nullptr;
  tensors.output = static_cast<float*>(output.mutable_data());

  py::gil_scoped_release release;
  kernel.forward(shape, sizes, tensors, num_threads);
}

}  // namespace
}  // namespace fcnnzoo

PYBIND11_MODULE(_C, module) {
  module.doc() = "fcnnzoo native kernels";

  module.def("conv_relu_pool_forward", &fcnnzoo::conv_relu_pool_forward, py::arg("input"), py::arg("weight"),
             py::arg("bias"), py::arg("output"), py::kw_only(), py::arg("stride"), py::arg("padding"),
             py::arg("pool_kernel"), py::arg("pool_stride"), py::arg("ceil_mode"), py::arg("num_threads"),
             py::arg("kernel") = std::string(),
             R"doc(Write max_pool2d(relu(conv2d(input, weight, bias))) into output.

Args:
    input: float32 array (N, C, H, W), C-contiguous.
    weight: float32 array (out_channels, C, kernel_height, kernel_width), C-contiguous.
    bias: float32 array (out_channels,) or None.
    output: writeable float32 array of the pooled shape, C-contiguous, not
        sharing memory with the other arrays.
    stride, padding, pool_kernel, pool_stride: (height, width) pairs.
    ceil_mode: round the pooled size up, as torch.nn.functional.max_pool2d does.
    num_threads: threads to use, the caller included (at least 1).
    kernel: a name from supported_kernels(); empty selects the first one
        in that list that supports the shape and is expected to be fastest.

Raises:
    TypeError: if an array is not a float32 numpy.ndarray.
    ValueError: if a shape, size or argument is invalid.
)doc");

  module.def("select_kernel", &fcnnzoo::select_kernel, py::arg("input_shape"), py::arg("weight_shape"),
             py::kw_only(), py::arg("stride"), py::arg("padding"), py::arg("pool_kernel"), py::arg("pool_stride"),
             py::arg("ceil_mode"),
             R"doc(Return the name of the kernel conv_relu_pool_forward picks by default for these shapes.

Raises:
    ValueError: if a shape or argument is invalid.
)doc");

  module.def("supported_kernels", &fcnnzoo::supported_kernel_names,
             "Return the kernel names this CPU can run, in the order the default choice tries them.");
}
