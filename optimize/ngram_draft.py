"""Draft tokens for speculative decoding, from the fine-tune's own answers and the context.

A fine-tuned model on a narrow task says the same things again and again: the JSON keys of its
answer format, the phrases of its domain, names and numbers it copies from the prompt. So a
table of what followed each short token sequence in the answers to training prompts (the
model's own, `draft_answers`, or the data's), plus a look-up in the conversation itself,
guesses the next few tokens right often enough that checking them all in one forward pass
beats computing them one by one. On a CPU a pass over 5 new tokens costs ~1.5 passes over 1:
the weights are read once.

Drafts choose nothing themselves: the model scores every drafted position in one pass and
the caller keeps the drafted tokens only as long as they equal what it would have chosen
(sampled or greedy) itself; the first difference is replaced by the model's own token. With a
drafted token of probability 1, "sample, then compare" is exactly speculative sampling's
accept/resample rule, so sampled outputs keep their distribution too. (fp32 variants give the
same tokens as one token per pass; int8 kernels round a multi-token pass slightly
differently, so an int8 answer can differ after a near tie.)

Three sources, tried in order:
1) the context (prompt and answer so far): the latest earlier occurrence of its last
   `min_match`..`max_match` tokens, and as many of the tokens that followed it as the match
   was long (prompt look-up decoding; a longer match is a longer copy more often); a match
   of LONG_MATCH tokens or more comes first, a shorter one only when the heads are unsure;
2) the draft heads' confident guesses (`draft_heads`, when the variant's graph has them),
   continued from the table;
3) the table: for the last 1..`order` tokens, the token that followed them in the
   answers in at least `min_share` of at least `min_count` cases; drafted one token at a time
   until no entry is confident.
The table is saved next to the model (`DRAFT_FILE`), built by `tuneloop optimize draft`.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tuneloop.errors import ModelLoadError

DRAFT_FILE = "draft_ngrams.json"
FORMAT_VERSION = 1
DRAFT_TOKENS = 4
"""Most draft tokens checked per pass: a pass over 5 tokens costs ~1.5 passes over one on a
2-core CPU, so longer drafts only pay when nearly all of them are kept."""
LONG_MATCH = 3
"""A copy from the context found by this many tokens or more beats the heads' guesses (on
the bench prompts: names and numbers the model repeats); a 2-token match does not."""


@dataclass
class DraftOptions:
    order: int = 3
    """Longest context (tokens) the table keys on."""
    min_count: int = 3
    """Times a context must occur in the answers to be drafted from."""
    min_share: float = 0.6
    """Share of those occurrences that the drafted next token must have."""
    model_answers: int = 500
    """Training prompts the model answers itself (greedy, spread over the file) to build the
    table from, as its drafts must guess its own words; 0: build it from the training data's
    answers instead (no generation)."""
    heads: bool = True
    """Also train two draft heads on the answering variant's hidden states over the same
    prompts and answers (about a minute) and add them to each fused variant's graph: they
    guess the next tokens after contexts the table has never seen."""
    head_size: int = 512
    """Hidden units of each draft head (more: better guesses, more to read per pass)."""
    head_epochs: int = 4
    """Passes of the heads' training over the training positions."""

    def __post_init__(self) -> None:
        if self.order < 1 or self.min_count < 1:
            raise ValueError("--order and --min-count must be at least 1")
        if not 0 <= self.min_share <= 1:
            raise ValueError(f"--min-share {self.min_share}: use a share between 0 and 1")
        if self.model_answers < 0:
            raise ValueError("--model-answers must be 0 (the data's answers) or more")
        if self.head_size < 8 or self.head_epochs < 1:
            raise ValueError("--head-size must be at least 8 and --head-epochs at least 1")


@dataclass
class NgramDraft:
    """The training answers' confident next tokens, keyed by the 1..order tokens before them."""

    table: dict[tuple[int, ...], int] = field(default_factory=dict)
    order: int = 3
    source: dict = field(default_factory=dict)
    """Where the table came from (data file, examples, options), for the artifact's record."""

    @classmethod
    def build(
        cls,
        sequences: Iterable[tuple[Sequence[int], int]],
        options: DraftOptions | None = None,
        source: dict | None = None,
    ) -> NgramDraft:
        """From (token ids, start of the answer) pairs: only tokens of answers are predicted,
        but their contexts may reach back into the prompt (the answer's first tokens follow
        the chat template's assistant header)."""
        options = options or DraftOptions()
        counts: dict[tuple[int, ...], Counter] = defaultdict(Counter)
        for ids, answer_start in sequences:
            for end in range(max(answer_start, 1), len(ids)):
                for n in range(1, min(options.order, end) + 1):
                    counts[tuple(ids[end - n : end])][ids[end]] += 1
        table = {}
        for context, following in counts.items():
            token, count = following.most_common(1)[0]
            if count >= options.min_count and count >= options.min_share * following.total():
                table[context] = token
        return cls(table, options.order, dict(source or {}))

    def propose(
        self, context: Sequence[int], limit: int, guesses: Sequence[int] = (), min_match: int = 2
    ) -> list[int]:
        """Up to `limit` tokens likely to follow `context` (empty when nothing is confident);
        `guesses`: the draft heads' confident guesses of the next tokens, if any."""
        if limit <= 0 or not context:
            return []
        copied, matched = _look_up(context, limit, min_match)
        if copied and (matched >= LONG_MATCH or not guesses):
            return copied
        if guesses:
            drafted = list(guesses[:limit])
            return drafted + self._from_table([*context, *drafted], limit - len(drafted))
        return self._from_table(context, limit)

    def _from_table(self, context: Sequence[int], limit: int) -> list[int]:
        tail = list(context[-self.order :])
        drafted: list[int] = []
        while len(drafted) < limit:
            token = None
            for n in range(min(self.order, len(tail)), 0, -1):
                token = self.table.get(tuple(tail[-n:]))
                if token is not None:
                    break
            if token is None:
                break
            drafted.append(token)
            tail = (tail + [token])[-self.order :]
        return drafted

    def save(self, folder: Path) -> Path:
        path = Path(folder) / DRAFT_FILE
        entries = sorted([*context, token] for context, token in self.table.items())
        data = {"version": FORMAT_VERSION, "order": self.order, "source": self.source}
        path.write_text(json.dumps({**data, "entries": entries}, separators=(",", ":")))
        return path

    @classmethod
    def load(cls, folder: Path) -> NgramDraft | None:
        """The folder's table, or None when it has none."""
        path = Path(folder) / DRAFT_FILE
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
            if data.get("version") != FORMAT_VERSION:
                raise ValueError(f"format version {data.get('version')}, expected {FORMAT_VERSION}")
            table = {tuple(entry[:-1]): int(entry[-1]) for entry in data["entries"]}
            return cls(table, int(data["order"]), data.get("source", {}))
        except (ValueError, KeyError, TypeError, IndexError) as error:
            raise ModelLoadError(
                f"{path}: not a tuneloop draft table ({error}); rebuild it with "
                "`tuneloop optimize draft` or delete it"
            ) from error


def draft_from_data(
    tokenizer, data: Path, options: DraftOptions | None = None, model=None
) -> NgramDraft:
    """The table of a chat/instruction data file (any format `tuneloop train` reads): each
    example's final answer after its templated prompt, as the model was trained to say it, or
    with a `model` (a fused variant) and `options.model_answers`, as the model says it."""
    options = options or DraftOptions()
    sequences, source = draft_sequences(tokenizer, data, options, model)
    return NgramDraft.build(sequences, options, source)


def draft_sequences(
    tokenizer, data: Path, options: DraftOptions, model=None
) -> tuple[list[tuple[list[int], int]], dict]:
    """(templated prompt + answer token ids, where the answer starts) for the drafts to learn
    from: the data's answers, or with a `model` and `options.model_answers`, the model's own
    answers to that many of the data's prompts; and a record of where they came from."""
    from tuneloop.data_formats import prompt_and_completion, read_examples

    examples = read_examples(Path(data))
    sequences = []
    for example in examples:
        messages, answer = prompt_and_completion(example)
        prompt = list(tokenizer.apply_chat_template(messages, add_generation_prompt=True))
        full = tokenizer.apply_chat_template([*messages, {"role": "assistant", "content": answer}])
        sequences.append((list(full), len(prompt)))
    source = {"data": str(data), "examples": len(examples), **options.__dict__}
    if model is None or options.model_answers <= 0:
        return sequences, source | {"answers": "data"}
    from tuneloop.optimize.draft_answers import model_answers, spread

    chosen = [sequences[i] for i in spread(options.model_answers, len(sequences))]
    longest = max(len(ids) - start for ids, start in sequences)
    answered = model_answers(model, [ids[:start] for ids, start in chosen], longest)
    source |= {"answers": f"model ({model.folder.name})", "answered_prompts": len(answered)}
    return answered, source


def variant_drafts(folder: Path, session) -> NgramDraft | None:
    """What a fused variant drafts with: its table; an empty one when only the draft heads
    in its graph guess; None when it has neither (it decodes one token per pass)."""
    from tuneloop.optimize.draft_heads_graph import DRAFT_IDS

    table = NgramDraft.load(folder)
    if table is None and DRAFT_IDS in {o.name for o in session.get_outputs()}:
        return NgramDraft()
    return table


def fused_variants(path: Path) -> list[Path]:
    """The fused variant folders a path names: itself, or the fused-* folders inside it (an
    `optimize all` folder). Only the fused runtime speculates."""
    path = Path(path)
    if (path / "genai_config.json").is_file():
        return [path]
    return sorted(p.parent for p in path.glob("fused-*/genai_config.json"))


def add_drafts(folders: list[Path], data: Path, options: DraftOptions | None = None) -> NgramDraft:
    """Build the table (and with `options.heads` the draft heads) of a training data file
    once and add them to each variant folder."""
    from tuneloop.optimize.draft_answers import answering_variant
    from tuneloop.optimize.draft_heads import build_heads, write_heads
    from tuneloop.optimize.runtime import folder_tokenizer, load_causal_lm
    from tuneloop.progress import Steps

    options = options or DraftOptions()
    answering = answering_variant(folders)
    steps = Steps("drafts", 1 + bool(options.heads) * (1 + len(folders)))
    with steps.step(f"the draft table from {data}"):
        model = load_causal_lm(answering) if options.model_answers > 0 else None
        sequences, source = draft_sequences(folder_tokenizer(folders[0]), data, options, model)
        del model  # the heads' training loads the variant again, with its hidden states
        draft = NgramDraft.build(sequences, options, source)
        for folder in folders:
            add_draft(folder, draft)
    if options.heads:
        with steps.step(f"training the draft heads on {answering.name}"):
            texts = [ids for ids, _ in sequences]
            heads = build_heads(answering, texts, options.head_size, options.head_epochs)
        for folder in folders:
            with steps.step(f"writing the heads into {folder.name}"):
                write_heads(folder, heads)
    steps.finish()
    return draft


def add_draft(folder: Path, draft: NgramDraft) -> Path:
    """Save the table into a variant folder and record it (hash, source) in its manifest."""
    from tuneloop.optimize.artifacts import ARTIFACT_FILE, read_artifact, save_json, sha256_file

    path = draft.save(folder)
    if (Path(folder) / ARTIFACT_FILE).is_file():
        manifest = read_artifact(folder)
        manifest.setdefault("files", {})[DRAFT_FILE] = sha256_file(path)
        manifest["draft"] = {"entries": len(draft.table), "order": draft.order, **draft.source}
        save_json(Path(folder) / ARTIFACT_FILE, manifest)
    return path


def _look_up(
    context: Sequence[int], limit: int, min_match: int, max_match: int = 4
) -> tuple[list[int], int]:
    """What followed the latest earlier occurrence of the context's last tokens (the longest
    match up to `max_match` tokens wins; shorter than `min_match` is no match), as many tokens
    as the match is long: on the bench's outputs, drafting a 2-token match's full `limit`
    mostly paid for tokens that were then thrown away. Also the match's length."""
    ids = np.asarray(context)
    last = len(ids) - 1
    best_length, best_end = 0, -1
    # Only earlier positions holding the last token can end a match: numpy finds them.
    for end in np.flatnonzero(ids[:last] == ids[last])[::-1].tolist():
        length = 1
        while length < max_match and length <= end and ids[end - length] == ids[last - length]:
            length += 1
        if length > best_length:
            best_length, best_end = length, end
            if length == max_match:
                break
    if best_length < min_match:
        return [], 0
    return ids[best_end + 1 : best_end + 1 + min(limit, best_length)].tolist(), best_length
