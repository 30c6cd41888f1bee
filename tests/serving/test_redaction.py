"""PII redaction of exported prompts: e-mails, phone numbers, Luhn-valid card numbers."""

from __future__ import annotations

import pytest

from tuneloop.serve.redaction import luhn_valid, redact


@pytest.mark.parametrize(
    "text, expected",
    [
        ("write to jane.doe+orders@mail.example.co.uk today", "write to [EMAIL] today"),
        ("card 4111 1111 1111 1111 was charged", "card [CARD] was charged"),
        ("card 5555-5555-5555-4444 expired", "card [CARD] expired"),
        ("amex 378282246310005.", "amex [CARD]."),
        ("call +44 20 7946 0958 after 5pm", "call [PHONE] after 5pm"),
        ("or (555) 123-4567 or 555.123.4567", "or [PHONE] or [PHONE]"),
        ("+1-202-555-0142", "[PHONE]"),
    ],
)
def test_personal_data_is_replaced(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "order #4111111111111112 is late",  # 16 digits, fails Luhn: an order number
        "order 4111-1111-1111-1112 is late",  # card-like, fails Luhn, too long for a phone
        "order #B90697, ticket 12345678, 20 items",
        "tracking 1Z999AA10123456784",
        "on 2024-01-15 at 12:30, version 1.2.3, total 1,299.99",
        "an e-mail address like support@ alone",
    ],
)
def test_order_numbers_dates_and_plain_text_survive(text):
    assert redact(text) == text


def test_luhn():
    assert luhn_valid("4111111111111111") and luhn_valid("79927398713")
    assert not luhn_valid("4111111111111112") and not luhn_valid("12ab")
