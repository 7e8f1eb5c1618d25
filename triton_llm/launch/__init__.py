"""Launching Triton: one server per rank under mpirun, locally, across hosts or in pods."""
