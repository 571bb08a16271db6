"""Benchmarks behind `chargeshare bench`: reports that compare our code path with a baseline measured
in the same run. Performance targets live here, as ratios, never as timed unit tests."""
