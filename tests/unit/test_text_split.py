"""Sentence splitting for sentence-by-sentence synthesis of streamed LLM text."""

from __future__ import annotations

import pytest

from ai_pipeline.text_split import SentenceSplitter, split_sentences


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Hello there. How are you? I am fine!",
            ["Hello there.", "How are you?", "I am fine!"],
        ),
        (
            "Dr. Smith will see you at 2 p.m. on Friday. Bring your card.",
            ["Dr. Smith will see you at 2 p.m. on Friday.", "Bring your card."],
        ),
        ("We open at 9 a.m. Please arrive early.", ["We open at 9 a.m.", "Please arrive early."]),
        ("Mr. and Mrs. Jones booked a table.", ["Mr. and Mrs. Jones booked a table."]),
        (
            "It costs 3.5 dollars, e.g. about 3 euros. Thanks.",
            ["It costs 3.5 dollars, e.g. about 3 euros.", "Thanks."],
        ),
        ("Visit example.com today. Bye.", ["Visit example.com today.", "Bye."]),
        ("We seat 1,200 guests. Book now.", ["We seat 1,200 guests.", "Book now."]),
        ("The table is at 10:30. See you.", ["The table is at 10:30.", "See you."]),
        ("J. R. R. Tolkien wrote it. Great.", ["J. R. R. Tolkien wrote it.", "Great."]),
        ("No. That is room No. 5 instead.", ["No.", "That is room No. 5 instead."]),
        ('"Really?" she asked. Yes.', ['"Really?" she asked.', "Yes."]),
        ("Wait... Really? Yes!", ["Wait...", "Really?", "Yes!"]),
        ("First line\nSecond line", ["First line", "Second line"]),
        ("  spaced   out   words.  ", ["spaced out words."]),
        ("1. Open the app.", ["1. Open the app."]),
    ],
)
def test_split_sentences(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def test_long_clause_splits_at_comma_short_ones_do_not() -> None:
    text = (
        "I can certainly help you with that booking request for this weekend, "
        "and I will send you a confirmation by text message right away."
    )
    assert split_sentences(text) == [
        "I can certainly help you with that booking request for this weekend,",
        "and I will send you a confirmation by text message right away.",
    ]
    assert split_sentences("Yes, sure, we can do that.") == ["Yes, sure, we can do that."]


def test_semicolon_and_colon_split_long_clauses() -> None:
    text = (
        "We have three kinds of tables available for large parties this Friday; "
        "the patio, the main room and the bar: all of them seat eight."
    )
    pieces = split_sentences(text)
    assert pieces[0].endswith("Friday;")
    assert " ".join(pieces) == text


def test_text_without_punctuation_is_capped_at_a_space() -> None:
    text = " ".join(["word"] * 100)  # 499 characters, no punctuation at all
    pieces = split_sentences(text, max_chars=120)
    assert all(len(p) <= 120 for p in pieces)
    assert " ".join(pieces) == text


def test_pieces_without_words_are_dropped() -> None:
    assert split_sentences("... — !") == []
    assert split_sentences("") == []
    assert split_sentences("   \n ") == []


def test_streaming_gives_the_same_pieces_as_whole_text() -> None:
    text = (
        "Dr. Lee sees patients from 9 a.m. to 5 p.m. Monday to Friday. The fee is $3.50, "
        "payable at reception; we accept cards, cash and vouchers from any of our partner "
        "shops. Call us on 555 0100! Anything else?"
    )
    for size in (1, 2, 3, 7, 40):
        splitter = SentenceSplitter()
        pieces: list[str] = []
        for i in range(0, len(text), size):
            pieces += splitter.push(text[i : i + size])
        last = splitter.flush()
        if last is not None:
            pieces.append(last)
        assert pieces == split_sentences(text), size


def test_a_sentence_is_released_once_the_next_word_arrives() -> None:
    splitter = SentenceSplitter()
    assert splitter.push("Thanks for calling.") == []
    assert splitter.push(" ") == []  # "calling." could still be "calling.com"-like
    assert splitter.push("How") == ["Thanks for calling."]
    assert splitter.push(" can I help?") == []
    assert splitter.flush() == "How can I help?"
    assert splitter.flush() is None


def test_streamed_decimal_is_not_split() -> None:
    splitter = SentenceSplitter()
    assert splitter.push("It costs 3.") == []
    assert splitter.push("5 dollars. ") == []
    assert splitter.push("Next") == ["It costs 3.5 dollars."]


def test_bad_limits_are_rejected() -> None:
    with pytest.raises(ValueError):
        SentenceSplitter(max_clause_chars=0)
    with pytest.raises(ValueError):
        SentenceSplitter(max_clause_chars=100, max_chars=50)
