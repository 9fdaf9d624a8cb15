// Python bindings of the int8 kernel: convert NumPy arrays to raw pointers,
// validate every array and argument, and release the GIL while the kernel
// runs. Invalid input raises TypeError or ValueError naming the argument.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "quantized_conv_relu_pool.h"

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

// Returns object as a C-contiguous, aligned array of ndim dimensions whose
// dtype is T; never copies.
template <class T>
py::array require_array(const py::object& object, const char* name, const char* dtype_name, py::ssize_t ndim) {
  if (!py::isinstance<py::array>(object)) {
    throw py::type_error(std::string(name) + " must be a numpy.ndarray of " + dtype_name + ", got " +
                         std::string(py::str(py::type::of(object).attr("__name__"))) + ".");
  }
  py::array array = py::reinterpret_borrow<py::array>(object);
  if (!py::isinstance<py::array_t<T>>(array)) {
    throw py::type_error(std::string(name) + " must have dtype " + dtype_name + " in native byte order, got " +
                         std::string(py::str(array.dtype())) + ".");
  }
  if (array.ndim() != ndim) {
    throw py::value_error(std::string(name) + " must be a " + std::to_string(ndim) + "-D array, got shape " +
                          shape_text(array) + ".");
  }
  if ((array.flags() & py::array::c_style) == 0) {
    throw py::value_error(std::string(name) + " must be C-contiguous; call .contiguous() on the tensor first.");
  }
  if (reinterpret_cast<uintptr_t>(array.data()) % alignof(T) != 0) {
    throw py::value_error(std::string(name) + " is not aligned to " + std::to_string(alignof(T)) +
                          " bytes; copy it first.");
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

// int8 weights packed once for the widest instruction set allowed, and the
// convolution and pooling arguments they were packed with.
class QuantizedForwardPlan {
 public:
  QuantizedForwardPlan(const py::object& weight_object, Pair stride, Pair padding, Pair pool_kernel,
                       Pair pool_stride, bool ceil_mode) {
    const py::array weight = require_array<int8_t>(weight_object, "weight", "int8", 4);
    ConvReluPoolShape geometry;
    geometry.out_channels = weight.shape(0);
    geometry.in_channels = weight.shape(1);
    geometry.kernel_height = weight.shape(2);
    geometry.kernel_width = weight.shape(3);
    geometry.stride_height = stride[0];
    geometry.stride_width = stride[1];
    geometry.padding_height = padding[0];
    geometry.padding_width = padding[1];
    geometry.pool_kernel_height = pool_kernel[0];
    geometry.pool_kernel_width = pool_kernel[1];
    geometry.pool_stride_height = pool_stride[0];
    geometry.pool_stride_width = pool_stride[1];
    geometry.ceil_mode = ceil_mode;
    packed_ = pack_quantized_weights(geometry, static_cast<const int8_t*>(weight.data()));
  }

  std::string kernel_name() const { return quantized_kernel_name(*packed_); }

  std::string call_kernel_name(int64_t in_height, int64_t in_width) const {
    const ConvReluPoolShape shape = quantized_call_shape(*packed_, 1, packed_->geometry.in_channels, in_height,
                                                         in_width);
    return quantized_call_kernel_name(*packed_, shape);
  }

  std::pair<int64_t, int64_t> output_size(int64_t in_height, int64_t in_width) const {
    const ConvReluPoolShape shape = quantized_call_shape(*packed_, 0, packed_->geometry.in_channels, in_height,
                                                         in_width);
    const ConvReluPoolSizes sizes = validate_shape(shape);
    return {sizes.pooled_height, sizes.pooled_width};
  }

  bool forward(const py::object& input_object, const py::object& bias_object, const py::object& multiplier_object,
               const py::object& output_object, double input_scale, int input_zero_point, double output_scale,
               int output_zero_point, bool relu, int num_threads) {
    const int64_t out_channels = packed_->geometry.out_channels;
    py::array input;
    QuantizedTensors tensors;
    if (py::isinstance<py::array_t<uint8_t>>(input_object)) {
      input = require_array<uint8_t>(input_object, "input", "uint8", 4);
      tensors.input_uint8 = static_cast<const uint8_t*>(input.data());
    } else {
      input = require_array<float>(input_object, "input", "float32 or uint8", 4);
      tensors.input_float = static_cast<const float*>(input.data());
    }
    py::array bias;
    if (!bias_object.is_none()) {
      bias = require_array<int32_t>(bias_object, "bias", "int32", 1);
      if (bias.shape(0) != out_channels) {
        throw py::value_error("bias must have out_channels=" + std::to_string(out_channels) +
                              " elements, got shape " + shape_text(bias) + ".");
      }
      tensors.bias = static_cast<const int32_t*>(bias.data());
    }
    const py::array multiplier = require_array<float>(multiplier_object, "multiplier", "float32", 1);
    if (multiplier.shape(0) != out_channels) {
      throw py::value_error("multiplier must have out_channels=" + std::to_string(out_channels) +
                            " elements, got shape " + shape_text(multiplier) + ".");
    }
    tensors.multiplier = static_cast<const float*>(multiplier.data());
    QuantizedParameters parameters;
    parameters.float_output = !py::isinstance<py::array_t<uint8_t>>(output_object);
    py::array output = parameters.float_output ? require_array<float>(output_object, "output", "uint8 or float32", 4)
                                               : require_array<uint8_t>(output_object, "output", "uint8", 4);
    if (!output.writeable()) {
      throw py::value_error("output must be a writeable array.");
    }
    if (parameters.float_output) {
      tensors.output_float = static_cast<float*>(output.mutable_data());
    } else {
      tensors.output_uint8 = static_cast<uint8_t*>(output.mutable_data());
    }
    if (num_threads < 1) {
      throw py::value_error("num_threads must be at least 1, got " + std::to_string(num_threads) + ".");
    }

    parameters.input_scale = input_scale;
    parameters.input_zero_point = input_zero_point;
    parameters.output_scale = static_cast<float>(output_scale);
    parameters.output_zero_point = output_zero_point;
    parameters.relu = relu;
    validate_quantized_parameters(parameters, tensors.multiplier, out_channels);

    const ConvReluPoolShape shape =
        quantized_call_shape(*packed_, input.shape(0), input.shape(1), input.shape(2), input.shape(3));
    const ConvReluPoolSizes sizes = validate_shape(shape);
    const std::array<int64_t, 4> expected{shape.batch, out_channels, sizes.pooled_height, sizes.pooled_width};
    for (int axis = 0; axis < 4; ++axis) {
      if (output.shape(axis) != expected[static_cast<size_t>(axis)]) {
        throw py::value_error("output must have shape (" + std::to_string(expected[0]) + ", " +
                              std::to_string(expected[1]) + ", " + std::to_string(expected[2]) + ", " +
                              std::to_string(expected[3]) + "), got " + shape_text(output) + ".");
      }
    }
    if (overlaps(output, input) || overlaps(output, multiplier) || (bias && overlaps(output, bias))) {
      throw py::value_error("output must not share memory with input, bias or multiplier.");
    }
    if (!accumulator_fits_int32(*packed_, tensors.bias, input_zero_point)) {
      return false;
    }

    // A copy keeps the packed weights alive while the GIL is released.
    const std::shared_ptr<const QuantizedPackedWeights> packed = packed_;
    py::gil_scoped_release release;
    quantized_conv_relu_pool_forward(*packed, shape, parameters, tensors, num_threads);
    return true;
  }

 private:
  std::shared_ptr<const QuantizedPackedWeights> packed_;
};

}  // namespace

void define_quantized_bindings(py::module_& module) {
  py::class_<QuantizedForwardPlan>(module, "QuantizedForwardPlan", R"doc(The int8 conv -> max-pool -> ReLU -> requantize block with its weights packed once.

The weights are copied and packed when the plan is made, for the widest
instruction set that the CPU has and FCNNZOO_CPU_CAPABILITY allows (AVX-512
VNNI, AVX2 or portable C++). A plan never sees later changes to the weight
array; make a new plan for new weights.

Raises:
    TypeError: if weight is not a C-contiguous int8 numpy.ndarray.
    ValueError: if weight is not 4-D or an argument is not positive
        (padding: negative).
)doc")
      .def(py::init<const py::object&, Pair, Pair, Pair, Pair, bool>(), py::arg("weight"), py::kw_only(),
           py::arg("stride"), py::arg("padding"), py::arg("pool_kernel"), py::arg("pool_stride"),
           py::arg("ceil_mode"))
      .def_property_readonly("kernel", &QuantizedForwardPlan::kernel_name, "Name of the kernel the plan runs.")
      .def("call_kernel", &QuantizedForwardPlan::call_kernel_name, py::arg("in_height"), py::arg("in_width"),
           "Return the name of the kernel that runs an input of this size; raise ValueError if it is invalid.")
      .def("output_size", &QuantizedForwardPlan::output_size, py::arg("in_height"), py::arg("in_width"),
           "Return the pooled (height, width) for an input of this size; raise ValueError if it is invalid.")
      .def("forward", &QuantizedForwardPlan::forward, py::arg("input"), py::arg("bias"), py::arg("multiplier"),
           py::arg("output"), py::kw_only(), py::arg("input_scale"), py::arg("input_zero_point"),
           py::arg("output_scale"), py::arg("output_zero_point"), py::arg("relu"), py::arg("num_threads"),
           R"doc(Write the block's output for input into output and return True.

Returns False, writing nothing, when some accumulator could leave the int32
range for this bias and input zero point; the caller then needs a wider
reference computation.

Args:
    input: float32 array (N, C, H, W), quantized on the fly, or its uint8
        quantized form; C-contiguous.
    bias: int32 array (out_channels,) or None.
    multiplier: float32 array (out_channels,), finite and not negative.
    output: writeable uint8 (quantized) or float32 (dequantized) array of
        the pooled shape, not sharing memory with the other arrays.
    input_scale, output_scale: finite, positive scales.
    input_zero_point, output_zero_point: zero points in [0, 255].
    relu: whether negative accumulators become 0 before requantization.
    num_threads: threads to use, the caller included (at least 1).

Raises:
    TypeError: if an array is not a numpy.ndarray of the listed dtypes.
    ValueError: if a shape, scale, zero point or multiplier is invalid.
)doc");
}

}  // namespace fcnnzoo
