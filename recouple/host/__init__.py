"""NumPy-backend fast paths where arrays are not the right tool: compiled
loops, the sphere grid index, spin assignment, component labelling and
device-specific delegates. Imported by the public API and the engine, never
by kernels."""
