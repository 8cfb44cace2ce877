"""Bounds on a label file, checked before any format parses it (every upload is hostile).

Named limits (settings class ``LabelLimits``, environment prefix ``SUNRISE_LABEL_``):

``MAX_BYTES`` (``max_bytes``, 64 MiB)
    Total size. The largest real export we know (a RemLogic file with every event of a 24-h
    recording) is a few MB; a DOMINO sleep profile of 72 h is 8,640 rows of ~30 bytes.
``MAX_LINE_CHARS`` (``max_line_chars``, 64 KiB)
    Longest line of a text format (an XML file is one element tree, not lines: not checked).
``MAX_ROWS`` (``max_rows``, 500,000)
    Lines of a text file: 72 h of 1-s ELAN ``.hyp`` values (259,200) fit, a runaway file does not.
``MAX_XML_DEPTH`` (``max_xml_depth``, 64)
    Element nesting; every label XML we read nests fewer than 10 deep. Checked while expat
    streams (``defusedxml`` iterparse), so a 300,000-deep file fails with a reason, never with
    a ``RecursionError``.
``MAX_XML_ELEMENTS`` (``max_xml_elements``, 2,000,000)
    Elements in one XML file.

DTDs, entity declarations and external references are refused by ``defusedxml`` (billion
laughs, quadratic blow-up, XXE); there is no entity expansion to bound.

Every reason names the limit, the setting and numbers, never the file's text.
"""

from __future__ import annotations

import io
from functools import lru_cache
from typing import BinaryIO
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as DET
from defusedxml import DefusedXmlException
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import LabelError


class LabelLimits(BaseSettings):
    """The label-file bounds (see the module docstring); ``SUNRISE_LABEL_MAX_BYTES`` etc."""

    model_config = SettingsConfigDict(env_prefix="SUNRISE_LABEL_", env_file=None, extra="ignore")

    max_bytes: int = Field(64 * 1024 * 1024, gt=0)
    max_line_chars: int = Field(64 * 1024, gt=0)
    max_rows: int = Field(500_000, gt=0)
    max_xml_depth: int = Field(64, gt=0)
    max_xml_elements: int = Field(2_000_000, gt=0)


@lru_cache(maxsize=1)
def default_limits() -> LabelLimits:
    """The limits from the environment (read once)."""
    return LabelLimits()


def read_bounded(stream: BinaryIO, limits: LabelLimits | None = None) -> bytes:
    """Read a label file from ``stream``, at most ``max_bytes + 1`` bytes.

    A longer stream is refused after reading one byte past the limit (never the whole file).
    """
    lim = limits or default_limits()
    data = stream.read(lim.max_bytes + 1)
    check_size(len(data), lim)
    return data


def check_size(size: int, limits: LabelLimits | None = None) -> None:
    """Refuse a label file larger than ``max_bytes`` (call with the object size before reading)."""
    lim = limits or default_limits()
    if size > lim.max_bytes:
        raise LabelError(
            "label_too_large",
            f"label file is over the MAX_BYTES limit of {lim.max_bytes} bytes (SUNRISE_LABEL_MAX_BYTES)",
        )


def check_text(data: bytes, fmt: str, limits: LabelLimits | None = None) -> None:
    """Check size, row count and line length of a text label file of format ``fmt``."""
    lim = limits or default_limits()
    check_size(len(data), lim)
    rows = data.count(b"\n") + 1
    if rows > lim.max_rows:
        raise LabelError(
            "label_too_many_rows",
            f"{fmt}: {rows} lines, over the MAX_ROWS limit of {lim.max_rows} (SUNRISE_LABEL_MAX_ROWS)",
        )
    pos = 0
    line = 1
    n = len(data)
    while pos < n:
        nl = data.find(b"\n", pos)
        end = n if nl < 0 else nl
        if end - pos > lim.max_line_chars:
            raise LabelError(
                "label_line_too_long",
                f"{fmt}: line {line} is {end - pos} bytes long, over the MAX_LINE_CHARS limit of "
                f"{lim.max_line_chars} (SUNRISE_LABEL_MAX_LINE_CHARS)",
            )
        pos = end + 1
        line += 1


def parse_xml(data: bytes, fmt: str, limits: LabelLimits | None = None) -> Element:
    """Parse label XML safely: no DTD/entities (defusedxml), bounded size, depth and element count."""
    lim = limits or default_limits()
    check_size(len(data), lim)
    depth = 0
    count = 0
    root: Element | None = None
    try:
        for event, el in DET.iterparse(io.BytesIO(data), events=("start", "end"), forbid_dtd=True):
            if event == "start":
                depth += 1
                count += 1
                if root is None:
                    root = el
                if depth > lim.max_xml_depth:
                    raise LabelError(
                        "xml_too_deep",
                        f"{fmt}: elements nest deeper than the MAX_XML_DEPTH limit of {lim.max_xml_depth} "
                        "(SUNRISE_LABEL_MAX_XML_DEPTH)",
                    )
                if count > lim.max_xml_elements:
                    raise LabelError(
                        "xml_too_many_elements",
                        f"{fmt}: more than the MAX_XML_ELEMENTS limit of {lim.max_xml_elements} elements "
                        "(SUNRISE_LABEL_MAX_XML_ELEMENTS)",
                    )
            else:
                depth -= 1
    except DefusedXmlException as exc:
        raise LabelError("unsafe_xml", f"{fmt}: XML with a {type(exc).__name__} (DTD/entity) is refused") from None
    except ParseError as exc:
        line, col = getattr(exc, "position", (0, 0))
        raise LabelError("bad_xml", f"{fmt}: XML does not parse (line {line}, column {col})") from None
    if root is None:
        raise LabelError("bad_xml", f"{fmt}: XML without a root element")
    return root


def local(tag: str) -> str:
    """An element's tag without its ``{namespace}``."""
    return tag.rsplit("}", 1)[-1]


def xml_root(data: bytes, fmt: str, tag: str) -> Element:
    """:func:`parse_xml`, then the root element must be ``tag`` (any namespace)."""
    root = parse_xml(data, fmt)
    if local(root.tag) != tag:
        raise LabelError("unknown_label_format", f"{fmt}: root element is not {tag}")
    return root
