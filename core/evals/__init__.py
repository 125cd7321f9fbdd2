"""Evaluation: the generation cache, the eval runner and its backends, grids, statistics and the verdict."""
