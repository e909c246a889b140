"""The English tokenizer against the tokens of UD English EWT (its independent truth), and by example."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from birnn.data.tokenizers import english, tokenize

EWT = Path(__file__).resolve().parents[2] / "shared" / "data" / "ud_english_ewt" / "en_ewt-ud-dev.conllu.gz"


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("I can't pay $3.50 for a 15-year-old's toy!",
         ["I", "ca", "n't", "pay", "$", "3.50", "for", "a", "15", "-", "year", "-", "old", "'s", "toy", "!"]),
        ("Won’t you? We're gonna win, Mr. Smith (U.S.)...",
         ["Wo", "n’t", "you", "?", "We", "'re", "gon", "na", "win", ",", "Mr.", "Smith", "(", "U.S.", ")", "..."]),
        ("See https://example.com/a?b=1, mail me@x.org :-) #win @bob 713-664-7478 b/c",
         ["See", "https://example.com/a?b=1", ",", "mail", "me@x.org", ":-)", "#win", "@bob", "713-664-7478", "b/c"]),
        ("cannot  1,000 10:30", ["can", "not", "1,000", "10:30"]),
        ("", []),
    ],
)
def test_english_by_example(text, tokens):
    assert english(text) == tokens
    assert "".join(tokens).replace(" ", "") == "".join(text.split())  # nothing lost, nothing added


def test_whitespace_and_unknown_tokenizer():
    assert tokenize(" a  b\tc ") == ["a", "b", "c"]
    with pytest.raises(ValueError, match="tokenizer must be one of"):
        tokenize("a", "spacy")


@pytest.mark.skipif(not EWT.exists(), reason="UD English EWT not in ../shared/data")
def test_english_cuts_ewt_sentences_as_the_treebank_does():
    """The `# text` of every dev sentence against its word FORMs: at least 90% of the
    sentences come out exactly as annotated (EWT itself is not consistent about hyphens)."""
    exact = total = 0
    text, words = None, []
    with gzip.open(EWT, "rt", encoding="utf-8") as lines:
        for line in lines:
            line = line.rstrip("\n")
            if line.startswith("# text = "):
                text, words = line[len("# text = "):], []
            elif line and not line.startswith("#"):
                if line.split("\t", 1)[0].isdigit():
                    words.append(line.split("\t")[1])
            elif not line and text is not None:
                total, exact, text = total + 1, exact + (english(text) == words), None
    assert total == 2001 and exact / total >= 0.90
