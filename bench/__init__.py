"""Benchmarks: each compares against its named peer side by side and writes bench/RESULTS.md."""
