"""Where and how kernels run: backends, randomness, planning, execution."""
