"""Turn a growing list of token ids into text deltas that are safe to send, honouring stop strings.

Two problems sit between tokens and a client:
- a token can end in the middle of a UTF-8 character (emoji, CJK split over byte tokens), so
  text is only released once it decodes without a replacement character at its end;
- a stop string can span several tokens, so text that could still become the start of a stop
  string is held back until the next token settles it. The stop string itself is never sent.

Decoding re-reads a short window of recent tokens (the offsets trick of TGI and vLLM) rather
than the whole output, so each step costs the same however long the answer gets.
"""

from __future__ import annotations

from collections.abc import Sequence

REPLACEMENT_CHAR = "\ufffd"


class TextStream:
    """Incremental detokenizer with stop strings for one generated sequence."""

    def __init__(self, tokenizer, stop: Sequence[str] = ()) -> None:
        self._tokenizer = tokenizer
        self._stop = tuple(s for s in stop if s)
        self._tokens: list[int] = []
        self._prefix_offset = 0
        self._read_offset = 0
        self._text = ""
        self._sent = 0
        self.stopped = False
        """True once a stop string appeared; the text up to it has been (or will be) sent."""

    @property
    def text(self) -> str:
        """All text sent or to be sent so far (without a stop string)."""
        return self._text

    def push(self, token_id: int) -> str:
        """Add one generated token; return the text that can be sent now (maybe empty)."""
        if self.stopped:
            return ""
        self._tokens.append(token_id)
        self._text += self._decode_new()
        return self._release(final=False)

    def flush(self) -> str:
        """The generation ended: release text held back for a stop string that never came.

        Bytes of a character the generation never finished are dropped rather than sent as
        a replacement character.
        """
        if self.stopped:
            return ""
        self._text += self._decode_new(final=True)
        return self._release(final=True)

    def _decode_new(self, final: bool = False) -> str:
        decode = self._tokenizer.decode
        prefix = decode(
            self._tokens[self._prefix_offset : self._read_offset], skip_special_tokens=True
        )
        full = decode(self._tokens[self._prefix_offset :], skip_special_tokens=True)
        if final:
            full = full.rstrip(REPLACEMENT_CHAR)
        if len(full) <= len(prefix) or full.endswith(REPLACEMENT_CHAR):
            return ""  # an incomplete character (or only special tokens): wait for more
        self._prefix_offset, self._read_offset = self._read_offset, len(self._tokens)
        return full[len(prefix) :]

    def _release(self, final: bool) -> str:
        start = max(0, self._sent - max((len(s) for s in self._stop), default=0))
        for stop in self._stop:
            at = self._text.find(stop, start)
            if at != -1:
                self._text = self._text[:at]
                self.stopped = True
        if self.stopped:
            return self._take(len(self._text))
        hold = 0 if final else self._partial_stop_suffix()
        return self._take(len(self._text) - hold)

    def _take(self, end: int) -> str:
        end = max(end, self._sent)
        delta = self._text[self._sent : end]
        self._sent = end
        return delta

    def _partial_stop_suffix(self) -> int:
        """Length of the longest end of the text that a stop string starts with."""
        longest = 0
        for stop in self._stop:
            for size in range(min(len(stop) - 1, len(self._text)), longest, -1):
                if self._text.endswith(stop[:size]):
                    longest = size
                    break
        return longest
