"""Domain errors. Each carries a stable machine-readable ``code``; the API and CLI map them at the edge."""

from __future__ import annotations

from dataclasses import asdict, dataclass


class AccountingError(Exception):
    """Base of every domain error; ``code`` is stable and machine-readable."""

    code = "accounting_error"


class UnitError(AccountingError):
    """A unit string that cannot be used: unknown, ambiguous, or of the wrong dimension."""

    code = "unit_error"

    def __init__(self, text: str, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.text = text
        if code:
            self.code = code


class AmbiguousUnitError(UnitError):
    """A spelling that pint reads as something other than what people mean (``ton``, ``MT``...)."""

    def __init__(self, text: str, fix: str) -> None:
        super().__init__(text, f"unit '{text}' is ambiguous: use {fix}", code="ambiguous_unit")
        self.fix = fix


class FactorError(AccountingError):
    """The factor library cannot answer: a missing factor, edition or a tampered source file."""

    code = "factor_error"


@dataclass(frozen=True, slots=True)
class RowError:
    """One problem in an input file: where it is, what was there, and what was expected."""

    row: int | None
    column: str | None
    value: str | None
    expected: str
    code: str = "invalid_value"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class InvalidFileError(AccountingError):
    """A whole input file is refused; ``errors`` lists every problem found in it."""

    code = "invalid_file"

    def __init__(self, errors: list[RowError], *, source: str | None = None) -> None:
        self.errors = errors
        self.source = source
        super().__init__(f"{len(errors)} error(s) in {source or 'input'}")

    def to_report(self) -> dict[str, object]:
        return {
            "code": self.code,
            "source": self.source,
            "error_count": len(self.errors),
            "errors": [e.to_dict() for e in self.errors],
        }
