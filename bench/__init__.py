"""Benchmarks: real processes on loopback, ratios against baselines measured in the same run."""
