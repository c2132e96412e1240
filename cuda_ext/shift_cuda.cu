// CUDA shift kernel (Wu et al. 2017, "Shift: A Zero FLOP, Zero Parameter Alternative to Spatial
// Convolutions").  Plain CUDA, no torch headers, so `nvcc -c shift_cuda.cu` compiles it on its own;
// shift.cpp validates tensors and calls `landscape_shift_cuda` with raw pointers.
//
// Channels are split into k*k groups of C / (k*k) channels; group g moves by
//   dy = (g / k - k / 2) * dilation,  dx = (g % k - k / 2) * dilation
// i.e. out[n, c, h, w] = in[n, c, h + dy, w + dx] (zero when outside the image).  Channels left
// over after the k*k groups are copied unshifted.  The adjoint (backward) is the opposite shift.
//
// The op is a pure data movement, so the kernel is templated on the element *size* only: one
// kernel serves float16 and bfloat16 (2 bytes), float32 (4) and float64 (8).  Zero fill writes a
// zero bit pattern, which is +0.0 in all of these formats.
//
// Memory access: every output element is written exactly once and at most one input element is
// read for it.  A block works inside one (n, c) plane, so the shift is uniform across the block;
// consecutive threads touch consecutive w, so both the reads (at a constant offset) and the writes
// are coalesced.

#include <cuda_runtime.h>
#include <stdint.h>

namespace {

// Each thread moves 16 bytes' worth of elements (4 floats, 8 halves), spaced one block apart so a
// warp's accesses stay contiguous; all loads are issued before the stores to keep several memory
// transactions in flight per thread.
template <typename T>
struct ItemsPerThread {
  static constexpr int value = sizeof(T) >= 16 ? 1 : 16 / static_cast<int>(sizeof(T));
};

template <typename T>
__global__ void shift_plane_kernel(const T* __restrict__ in, T* __restrict__ out, int channels,
                                   int height, int width, int kernel_size, int dilation,
                                   int group_size, int sign) {
  constexpr int kItems = ItemsPerThread<T>::value;
  const long long plane = blockIdx.x;                       // n * C + c
  const int c = static_cast<int>(plane % channels);
  const int plane_size = height * width;
  const T* src = in + plane * plane_size;
  T* dst = out + plane * plane_size;

  int dy = 0, dx = 0;
  const int groups = kernel_size * kernel_size;
  const int group = group_size > 0 ? c / group_size : groups;
  if (group < groups) {                                     // leftover channels stay in place
    const int half = kernel_size / 2;
    dy = sign * (group / kernel_size - half) * dilation;
    dx = sign * (group % kernel_size - half) * dilation;
  }

  const int tile = blockDim.x * kItems;
  for (int start = blockIdx.y * tile + threadIdx.x; start < plane_size; start += gridDim.y * tile) {
    T values[kItems];
#pragma unroll
    for (int j = 0; j < kItems; ++j) {
      const int i = start + j * blockDim.x;
      values[j] = T{};
      if (i < plane_size) {
        const int h = i / width;
        const int hs = h + dy;
        const int ws = i - h * width + dx;
        if (hs >= 0 && hs < height && ws >= 0 && ws < width) values[j] = src[hs * width + ws];
      }
    }
#pragma unroll
    for (int j = 0; j < kItems; ++j) {
      const int i = start + j * blockDim.x;
      if (i < plane_size) dst[i] = values[j];
    }
  }
}

template <typename T>
cudaError_t launch(const void* in, void* out, long long planes, int channels, int height, int width,
                   int kernel_size, int dilation, int sign, cudaStream_t stream) {
  const int plane_size = height * width;
  if (planes == 0 || plane_size == 0) return cudaSuccess;
  if (planes > 2147483647LL) return cudaErrorInvalidConfiguration;
  // Small planes (8x8 digits) get a small block; large ones 256 threads and enough y-blocks to
  // cover the plane (threads loop if the grid is capped).
  const int items = ItemsPerThread<T>::value;
  const int per_thread_rows = (plane_size + items - 1) / items;
  const int threads = per_thread_rows >= 256 ? 256 : ((per_thread_rows + 31) / 32) * 32;
  long long blocks_y = (plane_size + threads * items - 1) / (threads * items);
  if (blocks_y > 65535) blocks_y = 65535;
  dim3 grid(static_cast<unsigned>(planes), static_cast<unsigned>(blocks_y));
  const int group_size = channels / (kernel_size * kernel_size);
  shift_plane_kernel<T><<<grid, threads, 0, stream>>>(static_cast<const T*>(in), static_cast<T*>(out), channels,
                                                      height, width, kernel_size, dilation, group_size, sign);
  return cudaGetLastError();
}

}  // namespace

// Returns a cudaError_t as int (0 on success).  `direction` is +1 for the forward shift and -1 for
// its adjoint; `element_size` is 2, 4 or 8 bytes; `stream` is a cudaStream_t.
extern "C" int landscape_shift_cuda(const void* in, void* out, long long batch, int channels, int height,
                                    int width, int kernel_size, int dilation, int direction, int element_size,
                                    void* stream) {
  const long long planes = batch * channels;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  switch (element_size) {
    case 2:
      return static_cast<int>(launch<uint16_t>(in, out, planes, channels, height, width, kernel_size, dilation,
                                               direction, s));
    case 4:
      return static_cast<int>(launch<uint32_t>(in, out, planes, channels, height, width, kernel_size, dilation,
                                               direction, s));
    case 8:
      return static_cast<int>(launch<uint64_t>(in, out, planes, channels, height, width, kernel_size, dilation,
                                               direction, s));
    default:
      return static_cast<int>(cudaErrorInvalidValue);
  }
}

extern "C" const char* landscape_shift_cuda_error_string(int code) {
  return cudaGetErrorString(static_cast<cudaError_t>(code));
}
