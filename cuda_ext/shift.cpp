// landscape_shift_ext: the shift operation of Wu et al. 2017 as a PyTorch extension.
//
// Python calls `forward(x, kernel_size, dilation)` and `backward(grad, kernel_size, dilation)`;
// backward is the adjoint, i.e. the opposite shift.  Tensors must be contiguous NCHW float16,
// bfloat16, float32 or float64; anything else is a ValueError/TypeError naming what to do.
//
// Channel c belongs to group g = c / (C / k^2); group g < k^2 moves by
//   dy = (g / k - k / 2) * dilation, dx = (g % k - k / 2) * dilation
// (out[n, c, h, w] = in[n, c, h + dy, w + dx], zero outside); leftover channels are unshifted.
// The CPU kernel is parallel over the N*C planes and copies whole row segments; since the op only
// moves data it works on raw bytes, so every floating dtype shares one code path.

#include <torch/extension.h>

#include <cstring>
#include <string>

#ifdef WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
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

// Shift one H x W plane of `element_size`-byte elements by (dy, dx), zero filling what enters.
inline void shift_plane(const char* src, char* dst, int64_t height, int64_t width, int64_t dy, int64_t dx,
                        int64_t element_size) {
  const int64_t row_bytes = width * element_size;
  // Columns w with 0 <= w + dx < width are copied; the rest are zero.
  const int64_t w_lo = std::max<int64_t>(0, -dx);
  const int64_t w_hi = std::min<int64_t>(width, width - dx);
  for (int64_t h = 0; h < height; ++h) {
    char* out_row = dst + h * row_bytes;
    const int64_t hs = h + dy;
    if (hs < 0 || hs >= height || w_hi <= w_lo) {
      std::memset(out_row, 0, row_bytes);
      continue;
    }
    const char* in_row = src + hs * row_bytes;
    if (w_lo > 0) std::memset(out_row, 0, w_lo * element_size);
    std::memcpy(out_row + w_lo * element_size, in_row + (w_lo + dx) * element_size, (w_hi - w_lo) * element_size);
    if (w_hi < width) std::memset(out_row + w_hi * element_size, 0, (width - w_hi) * element_size);
  }
}

void shift_cpu(const at::Tensor& x, at::Tensor& out, int64_t kernel_size, int64_t dilation, int64_t direction) {
  const int64_t batch = x.size(0), channels = x.size(1), height = x.size(2), width = x.size(3);
  const int64_t element_size = x.element_size();
  const int64_t plane_bytes = height * width * element_size;
  const int64_t groups = kernel_size * kernel_size;
  const int64_t group_size = channels / groups;
  const int64_t half = kernel_size / 2;
  const char* src = static_cast<const char*>(x.const_data_ptr());
  char* dst = static_cast<char*>(out.mutable_data_ptr());
  // Grain: enough planes per task that tiny planes are not dominated by scheduling.
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, plane_bytes));
  at::parallel_for(0, batch * channels, grain, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const int64_t c = p % channels;
      const int64_t g = group_size > 0 ? c / group_size : groups;
      int64_t dy = 0, dx = 0;
      if (g < groups) {
        dy = direction * (g / kernel_size - half) * dilation;
        dx = direction * (g % kernel_size - half) * dilation;
      }
      shift_plane(src + p * plane_bytes, dst + p * plane_bytes, height, width, dy, dx, element_size);
    }
  });
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
        static_cast<void*>(at::cuda::getCurrentCUDAStream().stream()));
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
