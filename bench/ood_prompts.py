"""Prompts unlike the demo's support tickets: code, verse and other languages, varied lengths."""

from __future__ import annotations

import random

CODE = [
    "def merge(a, b):\n    out = []\n    while a and b:\n        out.append(a.pop(0) if a[0] < b[0]"
    " else b.pop(0))\n    return out + a + b\nWhy does this return the wrong order?",
    "SELECT u.id, COUNT(o.id) FROM users u LEFT JOIN orders o ON o.user_id = u.id GROUP BY u.id"
    " HAVING COUNT(o.id) > 3; -- rewrite with a window function",
    'fn main() { let v: Vec<i32> = (0..10).map(|x| x * x).collect(); println!("{:?}", v); }',
    "const debounce = (fn, ms) => { let t; return (...a) => { clearTimeout(t); t = setTimeout("
    "() => fn(...a), ms); }; };",
    '#include <stdio.h>\nint main(void) { for (int i = 0; i < 3; ++i) printf("%d\\n", i); }',
]
VERSE = [
    "Write a sonnet about the autumn moon rising over a silent harbour.",
    "Compose a haiku: frost on the window, a kettle hums, the cat stretches.",
    "The river bends where willows weep, and stars like lanterns drift to sleep.",
]
FOREIGN = [
    "Wie kann ich die Temperatur meines Backofens richtig kalibrieren?",
    "¿Cuál es la diferencia entre el pretérito perfecto y el indefinido?",
    "東京から京都までの新幹線の所要時間を教えてください。",
    "Объясните, пожалуйста, теорему Пифагора простыми словами.",
    "Quelle est la meilleure saison pour visiter la Bretagne à vélo ?",
    "Γιατί ο ουρανός είναι μπλε κατά τη διάρκεια της ημέρας;",
]


def ood_prompts(n: int, seed: int = 0) -> list[str]:
    """`n` out-of-distribution prompts (some repeated with small changes)."""
    rng = random.Random(seed)
    pool = CODE + VERSE + FOREIGN
    prompts = []
    for i in range(n):
        text = pool[i % len(pool)]
        if i >= len(pool):
            text = f"{text} ({rng.choice(['v2', 'again', '#' + str(rng.randint(1, 99))])})"
        prompts.append(text)
    return prompts
