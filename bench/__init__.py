"""Benchmarks for the job spine, run by hand; never collected by the test suite."""
