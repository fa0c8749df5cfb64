"""Answers from a persona's documents without a language model (the offline path).

The persona flow must answer only from the ``documents`` it is given. With an LLM the
documents go into the system prompt; without one, this picks the document sentence
that shares the most content words with the question, or nothing when the overlap is
too thin to be an answer (the flow then says it does not know).
"""

from __future__ import annotations

import re
from typing import Final

from ai_pipeline.nlp.normalize import normalize
from ai_pipeline.text_split import split_sentences

__all__ = ["answer_from_documents"]

# fmt: off
_STOP: Final = frozenset({
    "a", "an", "the", "is", "are", "was", "were", "be", "been", "do", "does", "did", "you",
    "your", "yours", "i", "me", "my", "we", "our", "us", "it", "its", "this", "that", "these",
    "those", "what", "which", "who", "whom", "when", "where", "why", "how", "can", "could",
    "would", "will", "shall", "should", "may", "might", "must", "to", "of", "in", "on", "at",
    "for", "with", "about", "from", "by", "and", "or", "but", "if", "so", "not", "no", "yes",
    "have", "has", "had", "there", "here", "tell", "know", "please", "any", "some", "much",
    "many", "get", "got", "give", "want", "need", "like", "just", "also", "am", "im", "dont",
    "ok", "okay", "hi", "hello", "then", "than", "too", "very", "really", "all",
})
# fmt: on
_PLURAL: Final = re.compile(r"(?<=[a-z]{3})(?:es|s)$")


def _content(text: str) -> set[str]:
    return {_PLURAL.sub("", word) for word in normalize(text).split() if word not in _STOP}


def answer_from_documents(documents: str, question: str, *, min_overlap: int = 1) -> str | None:
    """The document sentence that best answers ``question``, if any is close enough.

    Args:
        documents: the persona's documents (plain text).
        question: what the caller asked.
        min_overlap: content words the sentence must share with the question, at
            least; a question of one or two content words needs one shared word, a
            longer one needs two.

    Returns:
        A sentence from the documents, or None.
    """
    wanted = _content(question)
    if not wanted or not documents.strip():
        return None
    needed = max(min_overlap, 1 if len(wanted) <= 2 else 2)
    best: tuple[int, str] | None = None
    for sentence in split_sentences(documents, max_clause_chars=10_000, max_chars=10_000):
        overlap = len(wanted & _content(sentence))
        if overlap >= needed and (best is None or overlap > best[0]):
            best = (overlap, sentence)
    return best[1] if best is not None else None
