"""numba kernels: float64 arrays in, preallocated ``out`` arrays written; no validation, no pandas."""
