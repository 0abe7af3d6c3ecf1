"""Benchmarks of archlab itself; `make bench` runs `bench.speed`."""
