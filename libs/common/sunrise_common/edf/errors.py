"""The one error raised by the EDF layer.

Every rejection of a file carries a short, stable machine code (``reason``) that the pipeline
records in Firestore and that tests match on, plus a human-readable ``detail`` that names the
offending values.
"""

from __future__ import annotations

from sunrise_common.errors import PermanentError

#: The reasons this package raises, with what each means.
REASONS = {
    "empty_file": "the file has zero bytes",
    "not_edf": "the version field is neither EDF ('0       ') nor BDF ('\\xffBIOSEMI')",
    "truncated": "the file is shorter than its header says",
    "size_mismatch": "the file is longer than its header says",
    "bad_header_field": "a header field cannot be parsed or disagrees with another field",
    "absurd_value": "a header field parses but its value is out of any plausible range",
    "bad_annotations": "an EDF+ annotation signal does not hold valid TALs",
}


class EdfError(PermanentError, ValueError):
    """A file that is not a usable EDF/BDF file (a permanent failure: retrying cannot help).

    Parameters
    ----------
    reason : str
        Short stable machine code, one of :data:`REASONS`.
    detail : str
        Human-readable explanation including the offending values.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"

    def __reduce__(self) -> tuple[type[EdfError], tuple[str, str]]:  # keep pickling (multiprocessing workers) working with two arguments
        return (type(self), (self.reason, self.detail))
