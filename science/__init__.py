"""Robustness suite: the same model and detector on synthetic nights with shifted settings."""
