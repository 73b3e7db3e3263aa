"""Flow simulation: hashing algorithms, the kernel-exact Linux model, flows and networks."""
