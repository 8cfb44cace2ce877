"""Regular expressions compiled, and ``re`` imported, on first use.

``re`` (with ``enum``) and compiling this package's patterns cost a one-file anonymising process
several milliseconds of CPU; a plain EDF file whose per-signal text fields are empty needs no
pattern at all, and an EDF+ file needs them only while the kernel copy runs in another thread.
"""

from __future__ import annotations


class LazyPattern:
    """Stands for ``re.compile(pattern, flags)``: any attribute (``fullmatch``, ``search``,
    ``split``, ``findall``, ``pattern``...) is the compiled pattern's, compiled on first access."""

    __slots__ = ("_args", "_compiled")

    def __init__(self, pattern: str | bytes, flags: int = 0) -> None:
        self._args = (pattern, flags)
        self._compiled = None

    def __getattr__(self, name: str) -> object:
        compiled = self._compiled
        if compiled is None:
            import re

            compiled = self._compiled = re.compile(*self._args)
        return getattr(compiled, name)
