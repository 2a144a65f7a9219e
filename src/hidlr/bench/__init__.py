"""Benchmark workloads, baselines, runners, reports and plots (never logic the library lacks)."""
