"""The neighbour methods' shared code: one exact neighbour search, ML-kNN's posterior."""
