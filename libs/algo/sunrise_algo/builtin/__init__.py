"""The built-in algorithm (plug-in ``sunalgo``): chin-movement features, the versioned sleep/wake
models (JSON in ``models/``) and the respiratory event detector. A library, so that the sunalgo
stage and the CLI (``sunrise train``, ``sunrise algo``) import the same code."""
