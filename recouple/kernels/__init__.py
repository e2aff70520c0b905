"""Pure, batched array functions written against the array API standard.

Kernels take arrays and return arrays of the same namespace and device. They
perform no I/O, keep no state, never loop in Python over subjects or
permutations and never mutate their inputs, so JAX can jit them.
"""
