"""Unified social credit codes (统一社会信用代码, GB 32100-2015), the identity of every enterprise.

The code is the key of the registry and of every activity line, so a typo must be caught at the
edge, with a message that tells the person filling in the template what exactly is wrong, rather
than creating a phantom enterprise. The 18 characters are:

* 1: registration-authority code (登记管理部门代码), e.g. ``9`` for market regulation (工商);
* 2: organisation-type code (机构类别代码), e.g. ``1`` for an enterprise;
* 3-8: the administrative division code of the registering authority (登记管理机关行政区划码);
* 9-17: the organisation code (主体标识码, GB 11714);
* 18: the check character, computed from the first 17 with weights ``3**(i-1) mod 31``.

Only digits and upper-case letters other than I, O, Z, S and V occur, which makes 31 symbols; the
check character is ``31 - (weighted sum mod 31)``, with 31 written as ``0``.

>>> make_uscc("91350100M000100Y4")
'91350100M000100Y43'
>>> is_valid_uscc("91350100M000100Y43")
True
>>> uscc_problem("91350100M000100Y44")
"check character is '4', expected '3'"
"""

from __future__ import annotations

#: The 31 symbols of GB 32100-2015, in the order of their numeric values 0..30.
ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_VALUE = {symbol: value for value, symbol in enumerate(ALPHABET)}
#: Weight of each of the first 17 positions: 3**(i-1) mod 31.
WEIGHTS: tuple[int, ...] = tuple(pow(3, i, 31) for i in range(17))
LENGTH = 18

#: Registration-authority codes of GB 32100-2015 Table 1 (first character).
REGISTRATION_AUTHORITIES: dict[str, str] = {
    "1": "机构编制 (institutional establishment)",
    "2": "外交 (foreign affairs)",
    "3": "司法行政 (justice)",
    "4": "文化 (culture)",
    "5": "民政 (civil affairs)",
    "6": "旅游 (tourism)",
    "7": "宗教 (religious affairs)",
    "8": "工会 (trade unions)",
    "9": "工商 (market regulation)",
    "A": "中央军委改革和编制办公室 (military establishment)",
    "N": "农业 (agriculture)",
    "Y": "其他 (other)",
}


def check_character(first17: str) -> str:
    """Return the check character (position 18) for the first 17 characters of a code.

    Raises ValueError when ``first17`` is not 17 characters of the GB 32100 alphabet, because a
    check character computed over anything else would be meaningless.

    >>> check_character("91350100M000100Y4")
    '3'
    >>> check_character("91350100M000100YI")
    Traceback (most recent call last):
    ...
    ValueError: character 'I' at position 17 is not in the GB 32100 alphabet (0-9, A-Y without I, O, Z, S, V)
    """
    if len(first17) != LENGTH - 1:
        raise ValueError(f"expected the first 17 characters of a code, got {len(first17)}: {first17!r}")
    for position, char in enumerate(first17, 1):
        if char not in _VALUE:
            raise ValueError(
                f"character {char!r} at position {position} is not in the GB 32100 alphabet"
                " (0-9, A-Y without I, O, Z, S, V)"
            )
    remainder = sum(_VALUE[c] * w for c, w in zip(first17, WEIGHTS, strict=True)) % 31
    return ALPHABET[(31 - remainder) % 31]


def uscc_problem(code: str) -> str | None:
    """Return None when ``code`` is a valid unified social credit code, else what is wrong with it.

    The message names the first problem found, in the order a person would fix them: length, then
    characters, then the registration authority, the division code, and last the check character
    (naming the one expected, so that a transcription slip is easy to spot).

    >>> uscc_problem("9141010")
    'has 7 characters, expected 18'
    >>> uscc_problem("91410100MA44O0000X")
    "character 'O' at position 13 is not allowed (digits and upper-case letters except I, O, Z, S, V)"
    >>> uscc_problem("B1410100MA44A0000X")
    "registration-authority code 'B' (position 1) is not one of 1-9, A, N, Y"
    """
    if not isinstance(code, str):
        return f"is not text: {code!r}"
    if len(code) != LENGTH:
        return f"has {len(code)} characters, expected {LENGTH}"
    for position, char in enumerate(code, 1):
        if char not in _VALUE:
            hint = "; letters must be upper case" if char.upper() in _VALUE else ""
            return (
                f"character '{char}' at position {position} is not allowed"
                f" (digits and upper-case letters except I, O, Z, S, V{hint})"
            )
    if code[0] not in REGISTRATION_AUTHORITIES:
        return f"registration-authority code '{code[0]}' (position 1) is not one of " + ", ".join(
            ["1-9", "A", "N", "Y"]
        )
    division = code[2:8]
    if not division.isdigit():
        return f"administrative division code '{division}' (positions 3-8) must be 6 digits"
    expected = check_character(code[:17])
    if code[17] != expected:
        return f"check character is '{code[17]}', expected '{expected}'"
    return None


def is_valid_uscc(code: str) -> bool:
    """True when ``code`` is a valid unified social credit code.

    >>> is_valid_uscc("91350100M000100Y43"), is_valid_uscc("91350100m000100y43")
    (True, False)
    """
    return uscc_problem(code) is None


def make_uscc(first17: str) -> str:
    """Append the check character to 17 characters, giving a full 18-character code.

    Used to build synthetic but valid codes for sample data and tests.

    >>> code = make_uscc("91410100MA44A2B3C")
    >>> len(code), is_valid_uscc(code)
    (18, True)
    """
    code = first17 + check_character(first17)
    problem = uscc_problem(code)
    if problem is not None:
        raise ValueError(f"cannot make a valid code from {first17!r}: {problem}")
    return code
