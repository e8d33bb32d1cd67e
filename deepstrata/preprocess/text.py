"""Free text: a WordPiece subword tokenizer trained on the training rows -> padded ids.

With ``pretrained=NAME`` (``--strategy finetune|features``) the tokenizer is the one
the pretrained network was trained with, read from its package and never trained;
the state then records its name and sha256 instead of the vocabulary.

BERT-style text handling with Hugging Face ``tokenizers``: the normalizer cleans
control characters, lower-cases, strips accents (NFD) and puts spaces around CJK
characters; the pre-tokenizer splits on whitespace and punctuation; a WordPiece
vocabulary of at most ``vocabulary_size`` entries splits every word into known
pieces (``unbelievable`` -> ``un ##bel ##ievable``), or into ``[UNK]`` when a word
holds a character the vocabulary lacks. Ids: 0 pads, 1 is ``[UNK]``.

Why the vocabulary is not simply ``WordPieceTrainer`` on the rows: the trainer gives
each continuation piece (``##a``) an id in the order it meets words in a Rust
``HashMap``, whose order is random per process, and breaks ties between equally
frequent merges by those ids. The same data could then give different
vocabularies. Here the characters and their ``##`` forms are counted first and
handed to the trainer in sorted order, which fixes every id it breaks ties with;
the final ids are the special tokens then the pieces in sorted order.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

from deepstrata.config import default
from deepstrata.data.table import Table
from deepstrata.preprocess.base import HttpField, Preprocessor, ValueRefused, missing

PAD, UNKNOWN = 0, 1
PAD_TOKEN, UNKNOWN_TOKEN = "[PAD]", "[UNK]"
PREFIX = "##"  # WordPiece's mark for a piece that continues a word
STATE_FORMAT = "wordpiece-1"  # bumped whenever state() changes incompatibly
MIN_PIECE_COUNT = 2  # a merge seen once would only memorise one training word


def empty_tokenizer() -> Tokenizer:
    """The normalizer and pre-tokenizer, with a vocabulary of only the special tokens."""
    tokenizer = Tokenizer(
        models.WordPiece({PAD_TOKEN: PAD, UNKNOWN_TOKEN: UNKNOWN}, unk_token=UNKNOWN_TOKEN)
    )
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=True, lowercase=True
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return tokenizer


def as_texts(column: pd.Series) -> list[str]:
    """Every value as text; a missing or non-string value is empty text (all padding)."""
    return [value if isinstance(value, str) else "" for value in column.tolist()]


def count_words(texts: list[str], tokenizer: Tokenizer) -> Counter:
    """Normalised, pre-tokenised words and how often each occurs."""
    normalize = tokenizer.normalizer.normalize_str
    pre_tokenize = tokenizer.pre_tokenizer.pre_tokenize_str
    counts: Counter = Counter()
    for text in texts:
        if text:
            counts.update(word for word, _ in pre_tokenize(normalize(text)))
    return counts


def choose_alphabet(word_counts: Counter, budget: int) -> list[str]:
    """The characters (and ``##`` forms) that fit in ``budget`` vocabulary entries.

    Most frequent characters first, ties by character, so the choice is reproducible.
    A character costs one entry, plus one for its ``##`` form when it occurs inside
    a word. Returns the chosen entries, sorted.
    """
    first, inner = Counter(), Counter()
    for word, count in word_counts.items():
        first[word[0]] += count
        for character in word[1:]:
            inner[character] += count
    totals = first + inner
    alphabet: list[str] = []
    for character, _ in sorted(totals.items(), key=lambda item: (-item[1], item[0])):
        entries = [character] + ([PREFIX + character] if character in inner else [])
        if len(alphabet) + len(entries) > budget:
            break
        alphabet += entries
    return sorted(alphabet)


def train_tokenizer(texts: list[str], vocabulary_size: int) -> Tokenizer:
    """A WordPiece tokenizer of at most ``vocabulary_size`` entries, the same for the same texts."""
    tokenizer = empty_tokenizer()
    word_counts = count_words(texts, tokenizer)
    alphabet = choose_alphabet(word_counts, vocabulary_size - 2)
    known = {entry for entry in alphabet if not entry.startswith(PREFIX)}
    # Words with a character outside the alphabet can only ever be [UNK]: leave them out.
    kept = {word: n for word, n in word_counts.items() if known.issuperset(word)}

    # The trainer sees already-normalised words, split on the spaces between them.
    trainer_tokenizer = Tokenizer(models.WordPiece(unk_token=UNKNOWN_TOKEN))
    trainer_tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocabulary_size,
        min_frequency=MIN_PIECE_COUNT,
        # Listing the alphabet as "special tokens" gives it ids in this order (see the
        # module docstring); they are ordinary entries in the tokenizer built below.
        special_tokens=[PAD_TOKEN, UNKNOWN_TOKEN, *alphabet],
        continuing_subword_prefix=PREFIX,
        show_progress=False,
    )
    corpus = (" ".join([word] * n) for word, n in sorted(kept.items()))
    trainer_tokenizer.train_from_iterator(corpus, trainer=trainer, length=len(kept))

    pieces = set(trainer_tokenizer.get_vocab()) - {PAD_TOKEN, UNKNOWN_TOKEN}
    vocabulary = {PAD_TOKEN: PAD, UNKNOWN_TOKEN: UNKNOWN}
    vocabulary.update((piece, i) for i, piece in enumerate(sorted(pieces), start=2))
    tokenizer.model = models.WordPiece(
        vocabulary, unk_token=UNKNOWN_TOKEN, continuing_subword_prefix=PREFIX
    )
    return tokenizer


class TextPreprocessor(Preprocessor):
    """Text -> ``(rows, max_length)`` int64 WordPiece ids; 0 pads, 1 is ``[UNK]``.

    ``vocabulary_size`` caps the vocabulary learned by ``fit``; the property of the
    same name is the size actually learned (embedding tables use it). Texts longer
    than ``max_length`` pieces are cut at the end.

    >>> from deepstrata.data.sources import read_table
    >>> column = pd.Series(["Good movie", "bad movie", None, "a good plot"], name="review")
    >>> table = read_table(pd.DataFrame({"review": column}))
    >>> pre = TextPreprocessor(max_length=4).fit(column, table)
    >>> pre.tokens("A GOOD movie!")  # "!" never occurred in training
    ['a', 'good', 'movie', '[UNK]']
    >>> pre.transform(column, table)[2].tolist()
    [0, 0, 0, 0]
    """

    kind = "text"
    dtype = "int64"

    def __init__(
        self,
        *,
        max_length: int = default("text_max_length"),
        vocabulary_size: int = default("text_vocabulary"),
        pretrained: str | None = None,
    ) -> None:
        self.max_length = max_length
        self.vocabulary_limit = vocabulary_size
        self.pretrained = pretrained  # a registered network: its own tokenizer, not trained
        self.tokenizer: Tokenizer | None = None
        self.tokenizer_sha256: str | None = None

    def fit(self, column: pd.Series, table: Table) -> TextPreprocessor:
        if self.max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {self.max_length}")
        if self.vocabulary_limit < 3:
            raise ValueError(
                f"vocabulary_size must be >= 3 ([PAD], [UNK] and a piece), got {self.vocabulary_limit}"
            )
        if self.pretrained is not None:
            self._use_pretrained(None)
        else:
            self._use(train_tokenizer(as_texts(column), self.vocabulary_limit))
        return self

    def _use_pretrained(self, expected_sha256: str | None) -> None:
        """The pretrained network's tokenizer file; ``expected_sha256`` (from a bundle) must match,
        since ids from another vocabulary would silently mean other words to the network."""
        from deepstrata.pretrained.registry import file_sha256, get

        network = get(self.pretrained)
        path = network.tokenizer_file()
        digest = file_sha256(path)
        if expected_sha256 is not None and digest != expected_sha256:
            raise ValueError(
                f"the installed tokenizer of {network.name} ({path}) is not the one this model "
                f"was fit with (sha256 {digest[:12]}... instead of {expected_sha256[:12]}...)"
            )
        self.tokenizer_sha256 = digest
        self._use(Tokenizer.from_file(str(path)))

    def _use(self, tokenizer: Tokenizer) -> None:
        """Pad and cut to ``max_length`` in Rust, so encode_batch returns equal lengths."""
        tokenizer.enable_padding(pad_id=PAD, pad_token=PAD_TOKEN, length=self.max_length)
        tokenizer.enable_truncation(max_length=self.max_length)
        self.tokenizer = tokenizer

    def _fitted(self) -> Tokenizer:
        if self.tokenizer is None:
            raise RuntimeError("TextPreprocessor is not fitted; call fit() first")
        return self.tokenizer

    def transform(self, column: pd.Series, table: Table) -> np.ndarray:
        # A pretrained network was trained with its [CLS] ... [SEP] marks; ours has none.
        special = self.pretrained is not None
        encodings = self._fitted().encode_batch(as_texts(column), add_special_tokens=special)
        ids = np.array([encoding.ids for encoding in encodings], dtype=np.int64)
        return ids.reshape(len(encodings), self.max_length)  # (rows, max_length), also for 0 rows

    def tokens(self, text: str) -> list[str]:
        """The pieces of ``text`` at the positions ``transform`` gives, without padding."""
        if not isinstance(text, str):
            return []
        encoding = self._fitted().encode(text, add_special_tokens=False)
        return encoding.tokens[: sum(encoding.attention_mask)]

    @property
    def width(self) -> int:
        return self.max_length

    @property
    def vocabulary_size(self) -> int:
        """Entries in the learned vocabulary, [PAD] and [UNK] included."""
        return self._fitted().get_vocab_size()

    def state(self) -> dict:
        if self.pretrained is not None:  # the tokenizer ships with the network's package
            return {
                "format": STATE_FORMAT,
                "max_length": self.max_length,
                "pretrained": self.pretrained,
                "tokenizer_sha256": self.tokenizer_sha256,
            }
        return {
            "format": STATE_FORMAT,
            "max_length": self.max_length,
            "vocabulary_size": self.vocabulary_limit,
            "tokenizer": self._fitted().to_str(),
        }

    @classmethod
    def from_options(cls, options: dict) -> TextPreprocessor:
        from deepstrata.pretrained.registry import pretrained_name, uses_pretrained

        return cls(
            max_length=options["text_max_length"],
            vocabulary_size=options["text_vocabulary"],
            pretrained=pretrained_name("text", options) if uses_pretrained(options) else None,
        )

    @classmethod
    def from_state(cls, state: dict) -> TextPreprocessor:
        if state.get("format") != STATE_FORMAT:
            written_by = (
                "an older deepstrata (a word vocabulary, before subword tokenizers)"
                if "vocabulary" in state
                else f"another deepstrata version (format {state.get('format')!r})"
            )
            raise ValueError(
                f"this text column's preprocessor was written by {written_by}; expected "
                f"format {STATE_FORMAT!r}. Retrain the model with this deepstrata version"
            )
        if state.get("pretrained") is not None:
            pre = cls(max_length=state["max_length"], pretrained=state["pretrained"])
            pre._use_pretrained(state["tokenizer_sha256"])
            return pre
        pre = cls(max_length=state["max_length"], vocabulary_size=state["vocabulary_size"])
        pre._use(Tokenizer.from_str(state["tokenizer"]))
        return pre


def _parse(value, limits) -> str | None:
    if value is None or (isinstance(value, str) and len(value) <= limits.max_text_chars):
        return value
    raise ValueRefused(f"a string of at most {limits.max_text_chars} characters")


HTTP = HttpField(
    _parse,
    lambda categories, limits: {"type": "string", "maxLength": limits.max_text_chars},
    lambda categories, limits: "text; null is missing.",
)

SAMPLE_WORDS = ("good", "bad", "price", "fast", "slow", "the", "service", "broken")


def sample(pre: TextPreprocessor, rng, rows: int) -> list:
    """Short texts of common words (some unknown to the tokenizer); some missing."""
    return [
        None if m else " ".join(rng.choice(SAMPLE_WORDS, rng.integers(1, 12)))
        for m in missing(rng, rows)
    ]


def examples(rng, rows: int, folder) -> list:
    """Raw training values for checks (:func:`deepstrata.testing.check_kind`)."""
    values = [" ".join(rng.choice(SAMPLE_WORDS, rng.integers(2, 9))) for _ in range(rows)]
    values[1] = None
    return values
