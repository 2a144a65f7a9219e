"""Benchmark workloads, baselines, runners, reports and plots (never logic the library lacks).

One package per benchmark (``lr``, ``uci``, ``kl``, ``overhead``, ``uq_speed``); run plumbing they
share (metadata, JSON, the run journal, progress) in :mod:`hidlr.bench.harness`; statistics and
tables for reports in :mod:`hidlr.bench.reporting`.
"""
