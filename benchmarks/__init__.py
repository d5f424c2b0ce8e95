"""Benchmarks for `make bench`. Results go to benchmarks/results/<name>.json."""
