"""Benchmarks: speed, memory and accuracy targets, checked here rather than by timed tests.

Each ``bench/<area>.py`` module registers named benchmarks with :func:`bench.harness.benchmark`;
``invoke bench`` runs them and writes one JSON file per benchmark under ``bench/results/``.
"""
