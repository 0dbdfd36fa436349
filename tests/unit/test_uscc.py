"""Unified social credit codes (GB 32100-2015): check character and the problems people make."""

from __future__ import annotations

import pytest

from accounting.uscc import ALPHABET, WEIGHTS, check_character, is_valid_uscc, make_uscc, uscc_problem

# Codes published as examples of GB 32100-2015 (their check characters are known).
KNOWN_VALID = ["91350100M000100Y43", "91110000600037341L"]


def test_the_weights_are_powers_of_three_modulo_31():
    assert WEIGHTS == (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def test_the_alphabet_has_31_symbols_without_i_o_z_s_v():
    assert len(ALPHABET) == 31
    assert not set("IOZSV") & set(ALPHABET)


@pytest.mark.parametrize("code", KNOWN_VALID)
def test_published_codes_are_valid(code):
    assert uscc_problem(code) is None
    assert is_valid_uscc(code)
    assert check_character(code[:17]) == code[17]


def test_a_remainder_of_zero_gives_check_character_zero():
    # Find a body whose weighted sum is a multiple of 31 by adjusting its last character.
    for last in ALPHABET:
        body = "91410100MA44A2B3" + last
        remainder = sum(ALPHABET.index(c) * w for c, w in zip(body, WEIGHTS, strict=True)) % 31
        if remainder == 0:
            assert check_character(body) == "0"
            return
    pytest.fail("no body with remainder 0 found")


def test_make_uscc_appends_a_verifying_check_character():
    code = make_uscc("91410100MA44A2B3C")
    assert len(code) == 18
    assert code.startswith("91410100MA44A2B3C")
    assert is_valid_uscc(code)


def test_a_wrong_length_is_named_with_the_count():
    assert uscc_problem("91410100") == "has 8 characters, expected 18"
    assert uscc_problem("") == "has 0 characters, expected 18"


@pytest.mark.parametrize("letter", list("IOZSV"))
def test_letters_outside_the_alphabet_are_refused_with_their_position(letter):
    code = "91410100MA44A2B3C" + letter
    problem = uscc_problem(code)
    assert problem is not None
    assert f"'{letter}' at position 18" in problem
    assert "I, O, Z, S, V" in problem


def test_lower_case_is_refused_with_a_hint():
    code = make_uscc("91410100MA44A2B3C").lower()
    problem = uscc_problem(code)
    assert problem is not None and "upper case" in problem


def test_a_bad_registration_authority_is_named():
    body = "B1410100MA44A2B3C"
    code = body + check_character(body)
    problem = uscc_problem(code)
    assert problem is not None and "registration-authority code 'B'" in problem


def test_the_division_code_must_be_digits():
    body = "9141A100MA44A2B3C"
    problem = uscc_problem(body + check_character(body))
    assert problem is not None and "administrative division code" in problem


def test_a_check_character_mismatch_says_which_was_expected():
    good = make_uscc("91410100MA44A2B3C")
    wrong = next(c for c in ALPHABET if c != good[17])
    assert uscc_problem(good[:17] + wrong) == f"check character is '{wrong}', expected '{good[17]}'"


def test_a_single_transcription_slip_is_always_caught():
    # Mod-31 check: any one changed character changes the weighted sum by a non-multiple of 31.
    good = make_uscc("91410100MA44A2B3C")
    for position in range(2, 17):
        for replacement in ALPHABET:
            if replacement != good[position]:
                assert not is_valid_uscc(good[:position] + replacement + good[position + 1 :])


def test_check_character_refuses_input_of_the_wrong_shape():
    with pytest.raises(ValueError, match="17"):
        check_character("914101")
    with pytest.raises(ValueError, match="position 9"):
        check_character("91410100OA44A2B3C")


def test_non_text_is_reported_not_raised():
    assert uscc_problem(12345) is not None  # type: ignore[arg-type]
