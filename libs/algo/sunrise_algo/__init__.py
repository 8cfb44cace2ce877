"""sunrise_algo: the algorithm interface of the sunalgo stage, plug-in discovery, the HTTP adapter and the
conformance kit (docs/algorithms.md)."""
