import json
import random

import numpy as np
import pandas as pd
import pytest

from deepstrata.data.sources import read_table
from deepstrata.preprocess.text import PAD, UNKNOWN, TextPreprocessor


def fitted(texts, **options):
    column = pd.Series(texts, name="review")
    table = read_table(pd.DataFrame({"review": column}))
    return TextPreprocessor(**options).fit(column, table), column, table


def transform(pre, texts):
    column = pd.Series(texts, name="review")
    return pre.transform(column, read_table(pd.DataFrame({"review": column})))


def tied_sentences(rows=100, seed=0):
    """Short sentences over a few words: many merges tie on count (the hard case)."""
    words = ["good", "bad", "movie", "plot", "cast", "great", "terrible", "acting", "film"]
    rng = random.Random(seed)
    return [" ".join(rng.choice(words) for _ in range(rng.randint(0, 12))) for _ in range(rows)]


def test_the_same_rows_give_the_same_tokenizer():
    # tokenizers' own trainer gives different ids from run to run on these rows.
    texts = tied_sentences()
    states = [json.dumps(fitted(texts, vocabulary_size=60)[0].state()) for _ in range(3)]
    assert states[0] == states[1] == states[2]


def test_vocabulary_is_capped_and_starts_with_the_special_tokens():
    pre, _, _ = fitted(tied_sentences(), vocabulary_size=40)
    vocabulary = pre.tokenizer.get_vocab()
    assert pre.vocabulary_size == len(vocabulary) <= 40
    assert vocabulary["[PAD]"] == PAD == 0 and vocabulary["[UNK]"] == UNKNOWN == 1


def test_fit_learns_only_from_the_rows_it_is_given():
    frame = pd.DataFrame({"review": ["red apple", "green apple", "ripe banana", "red banana"]})
    table = read_table(frame)
    train = frame["review"].iloc[:2]  # "banana" is only in the other rows
    pre = TextPreprocessor(max_length=4).fit(train, table)
    assert "banana" not in pre.tokenizer.get_vocab()
    assert pre.tokens("apple") == ["apple"]
    assert pre.tokens("banana") != ["banana"]  # [UNK] or pieces, never the word
    # A word with a character never seen in training is [UNK] as a whole.
    assert transform(pre, ["zzz apple"])[0].tolist() == [
        UNKNOWN,
        pre.tokenizer.token_to_id("apple"),
        PAD,
        PAD,
    ]


def test_case_and_accents_are_normalised():
    pre, _, _ = fitted(["Café au lait", "cafe noir", "CAFE creme"], max_length=6)
    ids = transform(pre, ["CAFÉ", "cafe", "Cafe"])
    assert (ids == ids[0]).all()
    assert pre.tokens("Café") == ["cafe"]


def test_long_texts_are_cut_and_short_ones_padded():
    pre, _, _ = fitted(["one two three four five six"] * 2, max_length=4)
    ids = transform(pre, ["one two three four five six", "two", ""])
    assert ids.shape == (3, 4) and ids.dtype == np.int64
    assert (ids[0] != PAD).all()  # cut at 4 pieces, no padding
    assert ids[1].tolist() == [pre.tokenizer.token_to_id("two"), PAD, PAD, PAD]
    assert pre.tokens("one two three four five six") == ["one", "two", "three", "four"]
    assert transform(pre, []).shape == (0, 4)


def test_missing_and_non_string_values_are_empty_text():
    pre, _, _ = fitted(["good movie", None, np.nan, "bad movie"], max_length=5)
    ids = transform(pre, [None, np.nan, pd.NA, 3.5, ""])
    assert (ids == PAD).all()
    strings = pd.Series(["good", pd.NA], dtype="string", name="review")
    ids = pre.transform(strings, read_table(pd.DataFrame({"review": strings})))
    assert ids[0, 0] != PAD and (ids[1] == PAD).all()
    assert pre.tokens(None) == []


def test_state_is_plain_json_and_rebuilds_an_identical_preprocessor():
    texts = [*tied_sentences(50), "Café!", None, "a very, very long review " * 10]
    pre, column, table = fitted(texts, max_length=16, vocabulary_size=80)
    state = json.loads(json.dumps(pre.state()))
    rebuilt = TextPreprocessor.from_state(state)
    np.testing.assert_array_equal(rebuilt.transform(column, table), pre.transform(column, table))
    assert (rebuilt.width, rebuilt.vocabulary_size) == (pre.width, pre.vocabulary_size)
    assert rebuilt.tokens("boring film") == pre.tokens("boring film")
    assert rebuilt.state() == pre.state()


def test_the_old_word_vocabulary_state_is_refused_with_what_to_do():
    old = {"max_length": 64, "max_vocabulary": 20000, "min_count": 2, "vocabulary": ["good"]}
    with pytest.raises(ValueError, match=r"older deepstrata.*Retrain"):
        TextPreprocessor.from_state(old)
    with pytest.raises(ValueError, match="Retrain"):
        TextPreprocessor.from_state({"format": "wordpiece-999"})


def test_unfitted_use_says_so():
    with pytest.raises(RuntimeError, match="not fitted"):
        transform(TextPreprocessor(), ["text"])
