// landscape_shift_ext: the shift operation of Wu et al. 2017 as a PyTorch extension.
//
// Python calls `forward(x, kernel_size, dilation)` and `backward(grad, kernel_size, dilation)`;
// backward is the adjoint, i.e. the opposite shift.  Tensors must be contiguous NCHW float16,
// bfloat16, float32 or float64; anything else is a ValueError/TypeError naming what to do.
//
// Channel c belongs to group g = c / (C / k^2); group g < k^2 moves by
//   dy = (g / k - k / 2) * dilation, dx = (g % k - k / 2) * dilation
// (out[n, c, h, w] = in[n, c, h + dy, w + dx], zero outside); leftover channels are unshifted.
// The CPU kernel is parallel over the N*C planes; since the op only moves data it works on
// unsigned integers of the element's size, so the four floating dtypes share three instantiations.

#include <torch/extension.h>

#include <cstdint>
#include <cstring>
#include <string>

#ifdef WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
extern "C" int landscape_shift_cuda(const void* in, void* out, long long batch, int channels, int height,
                                    int width, int kernel_size, int dilation, int direction, int element_size,
                                    void* stream);
extern "C" const char* landscape_shift_cuda_error_string(int code);
#endif

bool cuda_built();

namespace {

void check_arguments(const at::Tensor& x, int64_t kernel_size, int64_t dilation) {
  TORCH_CHECK_VALUE(kernel_size == 3 || kernel_size == 5,
                    "shift: kernel_size must be 3 or 5, got ", kernel_size);
  TORCH_CHECK_VALUE(dilation >= 1, "shift: dilation must be a positive integer, got ", dilation);
  TORCH_CHECK_VALUE(x.dim() == 4, "shift: expected a 4-D NCHW tensor, got ", x.dim(),
                    " dimensions with shape ", x.sizes());
  const auto dtype = x.scalar_type();
  TORCH_CHECK_TYPE(dtype == at::kFloat || dtype == at::kHalf || dtype == at::kBFloat16 || dtype == at::kDouble,
                   "shift: expected float16, bfloat16, float32 or float64, got ", dtype,
                   "; convert with x.float()");
  TORCH_CHECK_VALUE(x.is_contiguous(), "shift: expected a contiguous NCHW tensor (got strides ", x.strides(),
                    "); call x.contiguous() first");
  TORCH_CHECK_VALUE(x.numel() < (int64_t{1} << 62), "shift: tensor too large");
  TORCH_CHECK_VALUE(x.size(2) * x.size(3) <= INT32_MAX, "shift: H*W must fit in 32 bits, got ",
                    x.size(2) * x.size(3));
}

// Shift one H x W plane of T-sized elements by (dy, dx), zero filling what enters. T is an
// unsigned integer of the element's size: the op moves bits, it never does arithmetic on them.
template <typename T>
void shift_plane(const T* src, T* dst, int64_t height, int64_t width, int64_t dy, int64_t dx) {
  // Output rows [h_lo, h_hi) and columns [w_lo, w_hi) have a source inside the image.
  const int64_t h_lo = std::max<int64_t>(0, -dy), h_hi = std::min<int64_t>(height, height - dy);
  const int64_t w_lo = std::max<int64_t>(0, -dx), w_hi = std::min<int64_t>(width, width - dx);
  if (h_hi <= h_lo || w_hi <= w_lo) {
    std::memset(dst, 0, height * width * sizeof(T));
    return;
  }
  // Output index i takes source index i + dy * width + dx. One flat copy over the output range
  // [first, last) moves every valid element (and stays inside the source plane); it also drags
  // wrapped-around values into the |dx| border columns, which the loop below zeroes.
  const int64_t first = h_lo * width + w_lo;
  const int64_t last = (h_hi - 1) * width + w_hi;
  std::memset(dst, 0, first * sizeof(T));
  std::memcpy(dst + first, src + first + dy * width + dx, (last - first) * sizeof(T));
  std::memset(dst + last, 0, (height * width - last) * sizeof(T));
  if (dx != 0) {
    for (int64_t h = h_lo; h < h_hi; ++h) {
      T* row = dst + h * width;
      for (int64_t w = 0; w < w_lo; ++w) row[w] = T(0);
      for (int64_t w = w_hi; w < width; ++w) row[w] = T(0);
    }
  }
}

template <typename T>
void shift_cpu_typed(const at::Tensor& x, at::Tensor& out, int64_t kernel_size, int64_t dilation,
                     int64_t direction) {
  const int64_t batch = x.size(0), channels = x.size(1), height = x.size(2), width = x.size(3);
  const int64_t plane = height * width;
  const int64_t groups = kernel_size * kernel_size;
  const int64_t group_size = channels / groups;
  const int64_t half = kernel_size / 2;
  const T* src = static_cast<const T*>(x.const_data_ptr());
  T* dst = static_cast<T*>(out.mutable_data_ptr());
  // Grain: about 32 KiB per task, so tiny planes are not dominated by scheduling.
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, plane * int64_t(sizeof(T))));
  at::parallel_for(0, batch * channels, grain, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const int64_t c = p % channels;
      const int64_t g = group_size > 0 ? c / group_size : groups;
      int64_t dy = 0, dx = 0;
      if (g < groups) {  // leftover channels stay in place
        dy = direction * (g / kernel_size - half) * dilation;
        dx = direction * (g % kernel_size - half) * dilation;
      }
      shift_plane<T>(src + p * plane, dst + p * plane, height, width, dy, dx);
    }
  });
}

void shift_cpu(const at::Tensor& x, at::Tensor& out, int64_t kernel_size, int64_t dilation, int64_t direction) {
  switch (x.element_size()) {
    case 2: shift_cpu_typed<uint16_t>(x, out, kernel_size, dilation, direction); break;
    case 4: shift_cpu_typed<uint32_t>(x, out, kernel_size, dilation, direction); break;
    case 8: shift_cpu_typed<uint64_t>(x, out, kernel_size, dilation, direction); break;
    default: TORCH_CHECK(false, "shift: unsupported element size ", x.element_size());
  }
}

at::Tensor shift_dispatch(const at::Tensor& x, int64_t kernel_size, int64_t dilation, int64_t direction) {
  check_arguments(x, kernel_size, dilation);
  at::Tensor out = at::empty_like(x, at::MemoryFormat::Contiguous);
  if (x.numel() == 0) return out;
  if (x.device().is_cpu()) {
    shift_cpu(x, out, kernel_size, dilation, direction);
    return out;
  }
#ifdef WITH_CUDA
  if (x.device().is_cuda()) {
    TORCH_CHECK_VALUE(x.size(0) * x.size(1) <= INT32_MAX, "shift: N*C must fit in 32 bits on CUDA");
    const c10::cuda::CUDAGuard guard(x.device());
    const int code = landscape_shift_cuda(
        x.const_data_ptr(), out.mutable_data_ptr(), x.size(0), static_cast<int>(x.size(1)),
        static_cast<int>(x.size(2)), static_cast<int>(x.size(3)), static_cast<int>(kernel_size),
        static_cast<int>(dilation), static_cast<int>(direction), static_cast<int>(x.element_size()),
        static_cast<void*>(c10::cuda::getCurrentCUDAStream().stream()));
    TORCH_CHECK(code == 0, "shift: CUDA kernel launch failed: ", landscape_shift_cuda_error_string(code));
    return out;
  }
#endif
  TORCH_CHECK_VALUE(false, "shift: tensors on ", x.device(), " are not supported by this build of "
                    "landscape_shift_ext (", (cuda_built() ? "cpu+cuda" : "cpu only"),
                    "); rebuild it where nvcc and a CUDA torch exist, or use the PyTorch reference");
  return out;
}

}  // namespace

bool cuda_built() {
#ifdef WITH_CUDA
  return true;
#else
  return false;
#endif
}

at::Tensor shift_forward(const at::Tensor& x, int64_t kernel_size, int64_t dilation) {
  return shift_dispatch(x, kernel_size, dilation, 1);
}

at::Tensor shift_backward(const at::Tensor& grad, int64_t kernel_size, int64_t dilation) {
  return shift_dispatch(grad, kernel_size, dilation, -1);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "Shift operation (Wu et al. 2017): zero-FLOP channel-grouped spatial shifts, CPU and CUDA kernels.";
  m.def("forward", &shift_forward, "Shift x (contiguous NCHW) by its channel group's offset, zero fill.",
        py::arg("x"), py::arg("kernel_size") = 3, py::arg("dilation") = 1);
  m.def("backward", &shift_backward, "Adjoint of forward: the opposite shift, zero fill.",
        py::arg("grad"), py::arg("kernel_size") = 3, py::arg("dilation") = 1);
  m.def("cuda_built", &cuda_built, "True when the extension was compiled with its CUDA kernel.");
}
