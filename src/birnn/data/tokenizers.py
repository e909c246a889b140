"""Raw text -> tokens, for taggers trained on tokenised corpora.

- ``whitespace``: ``text.split()``, for text that is already tokenised;
- ``english``: the conventions of Universal Dependencies' English treebanks (EWT, GUM),
  so that a tagger trained on them sees words cut as in training:

  * punctuation is split off words (``"(Hi!)"`` -> ``( Hi ! )``), except inside a number
    (``3.5``, ``1,000``, ``713-664-7478``), an abbreviation (``U.S.``, ``Mr.``, ``M.``, ``b/c``),
    a URL, a domain name, an e-mail address, a @mention, a #hashtag or an emoticon (``:-)``);
    runs of one punctuation character (``...``, ``***``) are one token;
  * hyphens between letters or digits are tokens (``15-year`` -> ``15 - year``);
  * clitics are words of their own: ``n't 's 're 've 'll 'd 'm`` (also with ’), with
    ``can't`` -> ``ca n't``, ``won't`` -> ``wo n't``, ``cannot`` -> ``can not``,
    ``gonna``/``wanna``/``gotta``/``outta`` -> ``gon na``, ``wan na``, ``got ta``, ``out ta``.
"""

from __future__ import annotations

import re

TOKENIZERS = ("whitespace", "english")

_WHOLE = re.compile(
    r"""(?:https?://|www\.)\S+?(?=[.,;:!?)"']*(?:\s|$))   # URL, trailing punctuation left out
      | [\w.+-]+@[\w-]+(?:\.[\w-]+)*                     # e-mail address, Name@ORG
      | [\w-]+(?:\.[\w-]+)*\.(?:com|org|net|edu|gov|info|io|co|uk|de)\b  # a domain name
      | [@#]\w+                                          # @mention, #hashtag
      | \d+(?:[.,:/]\d+)+ | \d+(?:-\d+){2,}              # 3.5  1,000  10:30  1/2  713-664-7478
      | [:;=8][-']?[()\[\]DPpO/\\|*]                       # an emoticon :-)  ;)  :D
      | \b[A-Za-z]/[A-Za-z]\b                             # b/c  w/o
      | (?:[A-Za-z]\.){2,}                               # U.S.  e.g.
      | (?:Mr|Mrs|Ms|Dr|Prof|Sr|Jr|St|Inc|Ltd|Co|Corp|vs|etc|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)\.
      | [A-Z]\.(?=\s|$)                                  # an initial: M.
      | ([^\w\s])\1+ | [!?]{2,}                         # ...  --  ***  ?!
      | \w+(?:['’]\w+)*                                  # a word, clitics cut below
      | \S                                               # any other character: punctuation
    """,
    re.VERBOSE,
)
_CLITIC = re.compile(r"(?i)^(.+?)(n['’]t|['’](?:s|re|ve|ll|d|m))$")
_SPECIAL = {"can't": ("ca", "n't"), "won't": ("wo", "n't"), "cannot": ("can", "not"), "gonna": ("gon", "na"),
            "wanna": ("wan", "na"), "gotta": ("got", "ta"), "outta": ("out", "ta")}


def _words(token: str) -> list[str]:
    """One regex token -> its words: the special forms and clitics split, case kept."""
    special = _SPECIAL.get(token.lower().replace("’", "'"))
    if special is not None:
        cut = len(special[0])
        return [token[:cut], token[cut:]]
    match = _CLITIC.match(token)
    if match and match.group(1).isalpha():
        return [match.group(1), match.group(2)]
    return [token]


def english(text: str) -> list[str]:
    """``"I can't pay $3.50 for a 15-year-old's toy!"`` ->
    ``I ca n't pay $ 3.50 for a 15 - year - old 's toy !``."""
    return [word for match in _WHOLE.finditer(text) for word in _words(match.group(0))]


def tokenize(text: str, tokenizer: str = "whitespace") -> list[str]:
    """The tokens of one line of text by the named tokenizer (``TOKENIZERS``)."""
    if tokenizer == "whitespace":
        return text.split()
    if tokenizer == "english":
        return english(text)
    raise ValueError(f"tokenizer must be one of {TOKENIZERS}; got {tokenizer!r}")
