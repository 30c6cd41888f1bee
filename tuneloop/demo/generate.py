"""Generate the support-ticket triage demo set from phrase banks, deterministically.

    python -m tuneloop.demo.generate [--out PATH] [--n N] [--seed S] [--stats]

Each ticket is assembled from independent parts (greeting, backstory, the problem, details,
feelings, the request, an unrelated aside, a sign-off), styled by a tone, and sometimes roughened
with typos. Only the standard library's seeded `random` is used, so a seed always gives the same
file; a test holds the shipped file to that.
"""

import argparse
import json
import random
import re
import string
from dataclasses import dataclass
from pathlib import Path

from tuneloop.demo import DEMO_DATA
from tuneloop.demo import phrases as P
from tuneloop.demo.noise import pick_noise

CATEGORIES = ("billing", "shipping", "returns", "technical", "account")
TONES = {
    "neutral": 26,
    "polite": 17,
    "terse": 11,
    "frustrated": 16,
    "angry": 8,
    "confused": 11,
    "formal": 11,
}
CALM_TONES = ("neutral", "polite", "terse", "confused", "formal")
NOISE_RATE = 0.25
ORDER_REF_RATE = 0.45  # of tickets whose intent needs an order number not yet given
CHATTY_RATE = 0.12  # customers who tell the whole story: the long tail of lengths
ASIDE_RATE = 0.22  # of non-terse tickets; dedup favours them, so about a fifth overall
NON_NATIVE_RATE = 0.12  # of neutral, polite and frustrated tickets
EMOTION_RATE = {
    "neutral": 0.1,
    "polite": 0.45,
    "formal": 0.4,
    "frustrated": 0.85,
    "angry": 0.95,
    "confused": 0.7,
    "terse": 0.0,
}
GREETING_RATE = {"terse": 0.0, "angry": 0.35, "frustrated": 0.55}  # others: 0.75
SIGNOFF_RATE = {"terse": 0.0, "angry": 0.4}  # others: 0.6
CONSTANT_SLOTS = {"company", "plus"}  # always known to the agent, so never "mentioned"
PROPER_STARTS = tuple(
    [name for name, _ in P.CATALOGUE["any"]] + P.COURIERS + P.COUNTRIES + [P.COMPANY, "Bluetooth"]
)


@dataclass
class Ticket:
    """One generated ticket with the facts the statistics need; `example()` is what ships."""

    category: str
    intent: str
    tone: str
    text: str
    reply: str
    noise: tuple[str, ...]  # names of the noise functions applied, in order
    aside: bool
    non_native: bool

    def example(self) -> dict:
        answer = json.dumps({"category": self.category, "reply": self.reply}, ensure_ascii=False)
        return {
            "messages": [
                {"role": "user", "content": self.text},
                {"role": "assistant", "content": answer},
            ]
        }


class Filler:
    """Fills templates from one ticket's slots and remembers which slots the ticket mentioned,
    so the reply only refers to what the customer actually said."""

    def __init__(self, values: dict[str, str]):
        self.values = values
        self.used: set[str] = set()

    def __call__(self, template: str) -> str:
        self.used |= slots_in(template)
        return template.format_map(self.values)


def generate(n: int = 1250, seed: int = 2026) -> list[dict]:
    """`n` chat examples (user ticket -> assistant JSON), n/5 per category, in shuffled order."""
    return [ticket.example() for ticket in build_tickets(n, seed)]


def write_jsonl(examples: list[dict], path: Path) -> None:
    """One JSON object per line, UTF-8, "\\n" endings on every platform."""
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for example in examples:
            f.write(json.dumps(example, ensure_ascii=False) + "\n")


def build_tickets(n: int, seed: int) -> list[Ticket]:
    rng = random.Random(seed)
    seen: set[str] = set()  # normalised texts, shared so no ticket repeats across categories
    tickets: list[Ticket] = []
    for category, quota in zip(CATEGORIES, quotas(n), strict=True):
        tickets += unique_tickets(rng, category, quota, seen)
    rng.shuffle(tickets)
    return tickets


def quotas(n: int) -> list[int]:
    base, extra = divmod(n, len(CATEGORIES))
    return [base + (i < extra) for i in range(len(CATEGORIES))]


def unique_tickets(rng: random.Random, category: str, quota: int, seen: set[str]) -> list[Ticket]:
    found: list[Ticket] = []
    for _ in range(quota * 50):
        if len(found) == quota:
            return found
        ticket = make_ticket(rng, category)
        key = normalise(ticket.text)
        if key not in seen:
            seen.add(key)
            found.append(ticket)
    raise RuntimeError(f"only {len(found)} distinct {category} tickets: grow the phrase banks")


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


def make_ticket(rng: random.Random, category: str) -> Ticket:
    intent = rng.choice(P.INTENTS[category])
    tones = [t for t in TONES if t in CALM_TONES or not intent.calm]
    tone = rng.choices(tones, weights=[TONES[t] for t in tones])[0]
    non_native = tone in ("neutral", "polite", "frustrated") and rng.random() < NON_NATIVE_RATE
    values = draw_slots(rng, intent)
    if tone == "terse":  # one-liners are never signed, so the reply can't know a name
        values["name"] = ""
    # Customers sometimes drop the "#"; the agent's reply always quotes the canonical number.
    fill = Filler({**values, "order": values["order_written"]})
    body = style(rng, tell(rng, intent, tone, category, fill, non_native), tone, non_native)
    has_aside = tone != "terse" and rng.random() < ASIDE_RATE
    if has_aside:  # styled apart: shouting or dropping words there could make it look primary
        extra = aside(rng, category, values)
        body.append(expand_contractions(extra) if tone == "formal" else extra)
    text = frame(rng, body, tone, values["name"], non_native)
    noise = pick_noise(rng) if rng.random() < NOISE_RATE else []
    for kind in noise:
        text = kind(rng, text)
    reply = write_reply(rng, intent, values, fill.used)
    kinds = tuple(kind.__name__ for kind in noise)
    return Ticket(category, intent.name, tone, text, reply, kinds, has_aside, non_native)


# -- slots ---------------------------------------------------------------------------------------


def draw_slots(rng: random.Random, intent: P.Intent) -> dict[str, str]:
    """Every value a template might ask for; the ticket mentions some, the reply reuses those."""
    product, price = rng.choice(P.CATALOGUE[intent.product])
    currency = rng.choice(P.CURRENCIES)
    phone, os_name = rng.choice(P.PHONES)
    size, old_size = rng.sample(P.SIZES, 2)
    colour, old_colour = rng.sample(P.COLOURS, 2)
    first, last = rng.choice(P.FIRST_NAMES), rng.choice(P.LAST_NAMES)
    order = f"#{rng.choice('ABCDEFGHJKLMNPRSTUVWXYZ')}{rng.randrange(10_000, 100_000)}"
    return {
        "order": order,
        "order_written": order if rng.random() < 0.8 else order[1:],
        "product": product,
        "amount": f"{currency}{price:.2f}",
        "device": phone,
        "os": os_name,
        "size": size,
        "old_size": old_size,
        "colour": colour,
        "old_colour": old_colour,
        "date": rng.choice(P.DATES),
        "when": rng.choice(P.WHENS),
        "wait": rng.choice(P.WAITS),
        "courier": rng.choice(P.COURIERS),
        "country": rng.choice(P.COUNTRIES),
        "promo": rng.choice(P.PROMOS),
        "error": rng.choice(P.ERRORS),
        "street": rng.choice(P.STREETS),
        "browser": rng.choice(P.BROWSERS),
        "email": email_for(rng, first, last),
        "name": signature_name(rng, first, last),
        "company": P.COMPANY,
        "plus": P.PLUS,
    }


def email_for(rng: random.Random, first: str, last: str) -> str:
    local = rng.choice([f"{first}.{last}", f"{first[0]}{last}", f"{first}{rng.randrange(70, 100)}"])
    return f"{local.lower()}@{rng.choice(P.EMAIL_DOMAINS)}"


def signature_name(rng: random.Random, first: str, last: str) -> str:
    """The name the customer signs with, or "" when they don't sign."""
    roll = rng.random()
    return first if roll < 0.3 else f"{first} {last}" if roll < 0.45 else ""


def slots_in(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name} - CONSTANT_SLOTS


# -- the ticket ----------------------------------------------------------------------------------


def tell(
    rng, intent: P.Intent, tone: str, category: str, fill: Filler, non_native: bool
) -> list[str]:
    """The customer's sentences in order: how it came about, the problem, details, the request."""
    if tone == "terse":
        short, want = fill(rng.choice(intent.shorts)), rng.choice(P.GENERIC_WANTS["terse"])
        return [short, want] if rng.random() < 0.35 and want not in short else [short]
    chatty = rng.random() < CHATTY_RATE
    sentences = lead_in(rng, intent, tone, category, fill, chatty)
    sentences.append(problem(rng, intent, tone, fill))
    if intent.need == "order" and "order" not in fill.used and rng.random() < ORDER_REF_RATE:
        sentences.append(fill(rng.choice(P.ORDER_REFERENCES)))
    details = intent.details[:]
    rng.shuffle(details)
    sentences += [fill(d) for d in details[: 3 if chatty else rng.choice((0, 0, 1, 1, 1, 2))]]
    if rng.random() < EMOTION_RATE[tone]:
        feeling = rng.choice(P.EMOTIONS[tone])
        sentences.insert(0 if rng.random() < 0.25 else len(sentences), feeling)
    if rng.random() < 0.65:
        sentences.append(request(rng, intent, tone, fill, non_native))
    return sentences


def lead_in(
    rng, intent: P.Intent, tone: str, category: str, fill: Filler, chatty: bool
) -> list[str]:
    sentences = []
    if tone == "formal" and rng.random() < 0.6:
        sentences.append(rng.choice(P.FORMAL_OPENERS[category]))
    if intent.contexts and rng.random() < 0.4:
        sentences.append(fill(rng.choice(intent.contexts)))
    backstories = rng.sample(P.BACKSTORIES, 2 if chatty else int(rng.random() < 0.15))
    return sentences + [fill(b) for b in backstories]


def problem(rng, intent: P.Intent, tone: str, fill: Filler) -> str:
    core = fill(rng.choice(intent.cores))
    if tone == "confused" and rng.random() < 0.5:
        core = f"{rng.choice(P.CONFUSED_LEADS)} {lower_first(core)}"
    return core


def request(rng, intent: P.Intent, tone: str, fill: Filler, non_native: bool) -> str:
    if non_native and rng.random() < 0.5:
        return rng.choice(P.NON_NATIVE_WANTS)
    if intent.wants and rng.random() < 0.75:
        want = fill(rng.choice(intent.wants))
        return want.replace("Can you", "Could you please", 1) if tone == "polite" else want
    return rng.choice(P.GENERIC_WANTS[tone])


def aside(rng, category: str, values: dict[str, str]) -> str:
    """A minor question from another category, placed after the main request."""
    other = rng.choice([c for c in CATEGORIES if c != category])
    return rng.choice(P.ASIDE_LEADS) + rng.choice(P.ASIDES[other]).format_map(values)


def style(rng, sentences: list[str], tone: str, non_native: bool) -> list[str]:
    if tone == "formal":
        sentences = [expand_contractions(s) for s in sentences]
    if tone == "angry":
        sentences = [shout(rng, s) for s in sentences]
    if non_native:
        sentences = [drop_articles(rng, expand_contractions(s)) for s in sentences]
    return sentences


# Longest first, so "it's been" becomes "it has been" rather than "it is been".
CONTRACTION_RE = re.compile("|".join(map(re.escape, sorted(P.CONTRACTIONS, key=len, reverse=True))))


def expand_contractions(text: str) -> str:
    return CONTRACTION_RE.sub(lambda m: P.CONTRACTIONS[m.group()], text)


EMPHASIS_RE = re.compile(r"\b(still|never|again|twice|nothing|not|no|all|every|wrong)\b")


def shout(rng, sentence: str) -> str:
    roll = rng.random()
    if roll < 0.2 and "@" not in sentence:
        sentence = sentence.upper()
    elif roll < 0.6:
        sentence = EMPHASIS_RE.sub(lambda m: m.group().upper(), sentence)
    if rng.random() < 0.5:
        sentence = re.sub(r"[.?!]$", lambda m: "!!!" if m.group() != "?" else "??", sentence)
    return sentence


def drop_articles(rng, sentence: str) -> str:
    """Leave out some articles mid-sentence, a common trait of non-native English."""
    return re.sub(
        r"(?<= )(the|a) (?=[a-z])", lambda m: "" if rng.random() < 0.5 else m.group(), sentence
    )


def frame(rng, body: list[str], tone: str, name: str, non_native: bool) -> str:
    """Greeting and sign-off around the body, on one line or as a short letter."""
    greetings = P.NON_NATIVE_GREETINGS if non_native else P.GREETINGS[tone]
    greeting = rng.choice(greetings) if rng.random() < GREETING_RATE.get(tone, 0.75) else ""
    signoffs = P.NON_NATIVE_SIGNOFFS if non_native else P.SIGNOFFS[tone]
    signoff = rng.choice(signoffs) if rng.random() < SIGNOFF_RATE.get(tone, 0.6) else ""
    signature = [signoff, name]
    if len(body) >= 3 and rng.random() < 0.5:
        blocks = [greeting, " ".join(body), "\n".join(s for s in signature if s)]
        return "\n\n".join(b for b in blocks if b)
    if greeting.endswith(",") and rng.random() < 0.3:  # "Hi, my order..." as often typed
        body = [lower_first(body[0]), *body[1:]]
    return " ".join(part for part in [greeting, *body, *signature] if part)


def lower_first(text: str) -> str:
    if re.match(r"I\b|I'|[A-Z0-9]{2}", text) or text.startswith(PROPER_STARTS):
        return text
    return text[:1].lower() + text[1:]


# -- the agent's first reply -----------------------------------------------------------------------


def write_reply(rng, intent: P.Intent, values: dict[str, str], mentioned: set[str]) -> str:
    """Acknowledge the specific problem, then say what happens next or ask for the missing piece."""
    acknowledgement = choose(rng, intent.acks, mentioned)
    if intent.need and intent.need not in mentioned:
        next_step = rng.choice(intent.asks)
    else:
        next_step = choose(rng, intent.nexts, mentioned)
    reply = f"{acknowledgement} {next_step}".format_map(values)
    first_name = values["name"].split(" ")[0]
    if first_name and rng.random() < 0.4:
        reply = f"Hi {first_name}, {lower_first(reply)}"
    return reply


def choose(rng, templates: list[str], mentioned: set[str]) -> str:
    """Prefer a template that quotes the customer's details back, among those we can fill."""
    usable = [t for t in templates if slots_in(t) <= mentioned]
    specific = [t for t in usable if slots_in(t)]
    return rng.choice(specific if specific and rng.random() < 0.7 else usable)


# -- statistics quoted in the data card ------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Regenerate the support-ticket triage demo set.")
    parser.add_argument("--out", type=Path, default=DEMO_DATA, help="where to write the JSONL")
    parser.add_argument("--n", type=int, default=1250, help="number of examples")
    parser.add_argument("--seed", type=int, default=2026, help="random seed")
    parser.add_argument("--stats", action="store_true", help="print the data card's statistics")
    args = parser.parse_args(argv)
    tickets = build_tickets(args.n, args.seed)
    write_jsonl([t.example() for t in tickets], args.out)
    print(f"wrote {len(tickets)} examples to {args.out}")
    if args.stats:
        from tuneloop.demo.stats import summarize

        print(summarize(tickets))


if __name__ == "__main__":
    main()
