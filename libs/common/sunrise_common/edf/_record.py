"""Immutable records for the EDF layer, made without the ``dataclasses`` module.

``dataclasses`` imports ``inspect`` and with it ``ast``, ``dis`` and ``tokenize``: about 15 ms of
CPU, more than a one-file anonymising process spends on anything but the kernel copy. A
:class:`Record` subclass declares its fields as class annotations, in order; a class attribute
gives a field its default, and ``_hidden`` names the fields left out of ``repr`` (personal data,
raw header bytes). It behaves like a ``@dataclass(frozen=True)`` class: construction by position
or keyword with those defaults, equality and hashing by field values (between instances of the
same class only), ``repr`` as ``Name(field=value, ...)``, assignment and deletion refused
(:class:`FrozenInstanceError`), pickling and copying; :meth:`Record.replace` stands for
``dataclasses.replace``.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: see sunrise_common.edf.header
if TYPE_CHECKING:
    from typing import Self


class FrozenInstanceError(AttributeError):
    """Raised on an attempt to assign or delete a field of a :class:`Record`."""


class Record:
    """Base of the immutable records (see the module docstring)."""

    _fields: tuple[str, ...] = ()
    _hidden: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        inherited = cls._fields  # a subclass of a record keeps its fields first, as dataclasses do
        fields = inherited + tuple(f for f in cls.__dict__.get("__annotations__", {}) if f not in inherited)
        defaults = {f: getattr(cls, f) for f in fields if hasattr(cls, f)}
        params = []
        for f in fields:
            if f in defaults:
                params.append(f"{f}=_default_{f}")
            elif any(g in defaults for g in fields[: len(params)]):
                raise TypeError(f"{cls.__name__}: field {f!r} without a default follows a field with one")
            else:
                params.append(f)
        body = "".join(f"    _d[{f!r}] = {f}\n" for f in fields)
        source = f"def __init__(self, {', '.join(params)}):\n    _d = self.__dict__\n{body}"
        namespace: dict[str, object] = {f"_default_{f}": v for f, v in defaults.items()}
        exec(source, namespace)  # as dataclasses does: a real signature, checked by the interpreter
        init = namespace["__init__"]
        init.__qualname__ = f"{cls.__qualname__}.__init__"  # type: ignore[attr-defined]
        cls.__init__ = init  # type: ignore[misc]
        cls._fields = fields
        cls.__match_args__ = fields

    def _values(self) -> tuple[object, ...]:
        d = self.__dict__
        return tuple(d[f] for f in self._fields)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return self._values() == other._values()  # type: ignore[attr-defined]
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        d = self.__dict__
        shown = ", ".join(f"{f}={d[f]!r}" for f in self._fields if f not in self._hidden)
        return f"{self.__class__.__qualname__}({shown})"

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def replace(self, **changes: object) -> Self:
        """A copy with some fields changed (as ``dataclasses.replace``)."""
        d = self.__dict__
        return self.__class__(**{**{f: d[f] for f in self._fields}, **changes})
