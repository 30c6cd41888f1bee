"""Noise for the demo tickets: real tickets are typed fast on phones.

Typos, missing apostrophes, lowercase, missing punctuation and text-speak, each a function
`(rng, text) -> text`. Order numbers, amounts and emails are never touched: replies quote them.
"""

import re

from tuneloop.demo import phrases as P


def pick_noise(rng) -> list:
    """One or two kinds of sloppiness; typos are the most common."""
    kinds = [typos, drop_apostrophes, lowercase, drop_punctuation, text_speak]
    chosen = rng.choices(kinds, weights=[8, 2, 3, 1, 2], k=rng.choice((1, 1, 2)))
    return sorted(chosen, key=kinds.index)  # typos first, while names are still capitalised


def protected(word: str) -> bool:
    """Order numbers, amounts and emails stay exact: the reply quotes them back."""
    return bool(re.search(r"[\d@#]", word))


def by_word(text: str, change) -> str:
    return re.sub(r"\S+", lambda m: m.group() if protected(m.group()) else change(m.group()), text)


def typos(rng, text: str) -> str:
    pieces = re.split(r"(\s+)", text)
    # Capitalised words are skipped: nobody misspells their own name, and the reply quotes it.
    candidates = [
        i
        for i, p in enumerate(pieces)
        if not protected(p) and p[:1].islower() and re.search(r"[a-z]{4}", p)
    ]
    budget = max(1, len(pieces) // 16)  # about one slip per eight words, or it stops reading true
    for i in rng.sample(candidates, min(len(candidates), budget, rng.choice((1, 1, 2, 3)))):
        pieces[i] = misspell(rng, pieces[i])
    return "".join(pieces)


def misspell(rng, word: str) -> str:
    """One slip of the finger inside the word: a neighbouring key, a swap, a drop or a double."""
    letters = [i for i, c in enumerate(word) if c.isalpha() and i > 0]
    i = rng.choice(letters)
    kind = rng.choice(("neighbour", "swap", "drop", "double"))
    if kind == "neighbour":
        return word[:i] + neighbour_key(rng, word[i]) + word[i + 1 :]
    if kind == "swap" and i + 1 < len(word) and word[i + 1].isalpha() and word[i] != word[i + 1]:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == "drop":
        return word[:i] + word[i + 1 :]
    return word[:i] + word[i] + word[i:]


def neighbour_key(rng, char: str) -> str:
    for row in P.QWERTY_ROWS:
        at = row.find(char.lower())
        if at >= 0:
            near = [row[j] for j in (at - 1, at + 1) if 0 <= j < len(row)]
            return rng.choice(near)
    return char


def drop_apostrophes(rng, text: str) -> str:
    return text.replace("'", "")


def lowercase(rng, text: str) -> str:
    return by_word(text, str.lower)


def drop_punctuation(rng, text: str) -> str:
    return by_word(text, lambda w: w.rstrip(".,"))


def text_speak(rng, text: str) -> str:
    def shorten(word: str) -> str:
        core = word.rstrip(".,!?")
        short = P.TEXT_SPEAK.get(core)
        return short + word[len(core) :] if short and rng.random() < 0.7 else word

    return by_word(text, shorten)
