"""Operations beyond torch.nn: the shift op (Wu et al. 2017), native when ``cuda_ext`` is built."""
from .shift import Shift, backend, extension_info, shift, shift_offsets, shift_reference

__all__ = ["shift", "shift_reference", "Shift", "backend", "extension_info", "shift_offsets"]
