"""Basic PII redaction of served text before it is written anywhere: e-mail addresses, phone
numbers and payment card numbers.

Card numbers are 13-19 digits (spaces or dashes allowed between groups) that pass the Luhn
check, so order, ticket and tracking numbers of the same length mostly survive; a digit run
that fails Luhn is left alone. Phone numbers are international (+CC ...) or grouped national
numbers with at least 9 digits; bare digit runs without separators or a leading + are left
alone, since they are far more often order or reference numbers in support text.
This is a basic filter, not a guarantee: names and street addresses are not detected.
"""

from __future__ import annotations

import re

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])")
PHONE = re.compile(
    r"(?<![\w+])"
    r"(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}"  # +44 20 7946 0958
    r"|\(\d{2,4}\)[ .-]?\d{3,4}[ .-]?\d{3,4}"  # (555) 123-4567
    r"|\d{2,4}[ .-]\d{3,4}[ .-]\d{3,4}(?:[ .-]\d{2,4})?)"  # 555-123-4567, 020 7946 0958
    r"(?![\w-])"
)
MIN_PHONE_DIGITS, MAX_PHONE_DIGITS = 9, 15  # E.164 numbers have at most 15 digits
EMAIL_MARK, PHONE_MARK, CARD_MARK = "[EMAIL]", "[PHONE]", "[CARD]"


def redact(text: str) -> str:
    """`text` with e-mails, card numbers (Luhn-valid) and phone numbers replaced by markers."""
    text = EMAIL.sub(EMAIL_MARK, text)
    text = CARD.sub(lambda m: CARD_MARK if luhn_valid(_digits(m.group())) else m.group(), text)
    return PHONE.sub(_phone, text)


def _phone(match: re.Match) -> str:
    digits = len(_digits(match.group()))
    return PHONE_MARK if MIN_PHONE_DIGITS <= digits <= MAX_PHONE_DIGITS else match.group()


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum every payment card number satisfies."""
    if not digits.isdigit():
        return False
    total = 0
    for i, char in enumerate(reversed(digits)):
        value = int(char)
        if i % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _digits(text: str) -> str:
    return "".join(char for char in text if char.isdigit())
