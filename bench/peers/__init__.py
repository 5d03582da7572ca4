"""Baselines the benchmarks time our code against (written from their published recipes)."""
