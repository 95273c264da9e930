"""Benchmarks run by `make bench`: each `bench_<area>.py` module has a `main()` that prints its figures as ratios
against a baseline measured in the same run (these machines are noisy), never as pass/fail assertions."""
