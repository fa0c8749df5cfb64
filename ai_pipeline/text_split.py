"""Cut text into sentences (and long clauses) for sentence-by-sentence speech synthesis.

Synthesis of the first piece starts while the LLM is still writing the rest, so the
splitter is incremental: feed it fragments as they stream in and it hands back each
sentence once the text that follows proves the sentence is over. It knows the usual
traps: titles ("Dr. Smith"), "e.g.", decimals ("3.5"), times ("2 p.m."), initials and
list numbers.
"""

from __future__ import annotations

import re

__all__ = ["DEFAULT_MAX_CHARS", "DEFAULT_MAX_CLAUSE_CHARS", "SentenceSplitter", "split_sentences"]

DEFAULT_MAX_CLAUSE_CHARS = 60
"""A piece longer than this may end at a comma, semicolon or colon."""

DEFAULT_MAX_CHARS = 200
"""A piece with no punctuation at all is cut at a space past this length."""

# Never the end of a sentence: titles and Latin abbreviations always continue.
_NEVER_END = frozenset(
    {
        "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "ft", "vs",
        "e.g", "i.e", "cf", "approx", "dept", "ext", "tel", "apt", "fig",
    }
)  # fmt: skip
# Ends a sentence only when a capitalised word follows ("at 2 p.m. Then we..." but not
# "at 2 p.m. Friday"); lower-case never starts a sentence anyway.
_END_IF_CAPITAL = frozenset({"a.m", "p.m", "etc", "inc", "ltd", "co", "corp", "jan", "feb"})
# "No. 5" is a number; "No. That's wrong." ends a sentence.
_END_UNLESS_DIGIT = frozenset({"no", "nos"})

# Terminal punctuation, any closing quotes/brackets, then the whitespace that proves
# the sentence is over. A '.' followed directly by a letter or digit (3.5, example.com)
# never matches.
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s)")
_CLAUSE_END = re.compile(r"[,;:](?=\s)")
_WORD_BEFORE = re.compile(r"(\S+?)[.]+[\"'”’)\]]*$")
_SPEAKABLE = re.compile(r"\w")


class SentenceSplitter:
    """Incremental splitter: `push` fragments, get complete pieces; `flush` the rest.

    Args:
        max_clause_chars: a piece already longer than this ends at the next ``, ; :``
            followed by a space (short clauses stay together for natural prosody).
        max_chars: a piece with no usable punctuation ends at the last space once it
            grows past this (bounds the wait for the first audio).

    Raises:
        ValueError: a limit is not positive, or max_chars < max_clause_chars.
    """

    def __init__(
        self,
        *,
        max_clause_chars: int = DEFAULT_MAX_CLAUSE_CHARS,
        max_chars: int = DEFAULT_MAX_CHARS,
    ) -> None:
        if max_clause_chars <= 0 or max_chars < max_clause_chars:
            raise ValueError("need 0 < max_clause_chars <= max_chars")
        self._clause = max_clause_chars
        self._max = max_chars
        self._buf = ""

    def push(self, fragment: str) -> list[str]:
        """Add streamed text; return the pieces it completed (possibly none).

        Args:
            fragment: the next bit of text, of any length (a token, a word, a paragraph).

        Returns:
            Complete sentences or clauses, stripped, in order.
        """
        self._buf += fragment
        pieces: list[str] = []
        while True:
            cut = self._find_cut()
            if cut is None:
                break
            piece, self._buf = self._buf[:cut], self._buf[cut:]
            _append_speakable(pieces, piece)
        return pieces

    def flush(self) -> str | None:
        """End of text: return whatever remains as a last piece, if it has words."""
        rest, self._buf = self._buf, ""
        pieces: list[str] = []
        _append_speakable(pieces, rest)
        return pieces[0] if pieces else None

    def _find_cut(self) -> int | None:
        """Index just after the first complete piece in the buffer, or None to wait."""
        buf = self._buf
        start = len(buf) - len(buf.lstrip())
        newline = buf.find("\n", start)
        for match in _SENTENCE_END.finditer(buf, start):
            if newline != -1 and newline < match.start():
                break
            verdict = self._is_sentence_end(buf, start, match)
            if verdict is None:
                return None  # undecidable until more text arrives
            if verdict:
                return match.end()
        if newline != -1:
            return newline + 1
        limit = min(len(buf), start + self._max)
        for match in _CLAUSE_END.finditer(buf, start, limit):
            if match.end() - start > self._clause:
                return match.end()
        if len(buf) - start > self._max:
            space = buf.rfind(" ", start, start + self._max)
            return space + 1 if space > start else start + self._max
        return None

    @staticmethod
    def _is_sentence_end(buf: str, start: int, match: re.Match[str]) -> bool | None:
        """Whether the punctuation in ``match`` ends a sentence.

        Returns None while the next word has not arrived: it decides (a capital starts
        a sentence, a lower-case word continues one).
        """
        following = buf[match.end() :].lstrip()
        if not following:
            return None
        nxt = following[0]
        if nxt.islower():
            return False  # sentences start capitalised: '"Really?" she asked', "U.S. and"
        punct = match.group()
        if any(ch in punct for ch in "!?…") or punct.startswith(".."):
            return True
        word_match = _WORD_BEFORE.search(buf, start, match.end())
        if word_match is None:
            return True
        word = word_match.group(1)
        key = word.lower().lstrip("(\"'“‘")
        if key in _NEVER_END:
            return False
        if len(key) == 1 and word[-1].isupper():
            return False  # an initial: "J. Smith"
        if word_match.start() == start and key.isdigit():
            return False  # a list number at the start of a piece: "1. Open the app"
        if key in _END_UNLESS_DIGIT:
            return not nxt.isdigit()
        if key in _END_IF_CAPITAL:
            return nxt.isupper()
        return True


def _append_speakable(pieces: list[str], piece: str) -> None:
    text = " ".join(piece.split())
    # Pieces of bare punctuation ("...", "—") would synthesize as silence or noise.
    if text and _SPEAKABLE.search(text):
        pieces.append(text)


def split_sentences(
    text: str,
    *,
    max_clause_chars: int = DEFAULT_MAX_CLAUSE_CHARS,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> list[str]:
    """Split a whole text into the pieces `SentenceSplitter` would produce.

    Args:
        text: any text.
        max_clause_chars: see `SentenceSplitter`.
        max_chars: see `SentenceSplitter`.

    Returns:
        Sentences (or long clauses), whitespace-normalised, without empty pieces.
    """
    splitter = SentenceSplitter(max_clause_chars=max_clause_chars, max_chars=max_chars)
    pieces = splitter.push(text)
    last = splitter.flush()
    if last is not None:
        pieces.append(last)
    return pieces
