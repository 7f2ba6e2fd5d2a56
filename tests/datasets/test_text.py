import pytest
import torch

from flt3d.datasets.text import (
    CharCorpus,
    CharVocab,
    CharWindowDataset,
    load_pydoc_corpus,
    split_spans,
)


@pytest.fixture(scope="module")
def corpus():
    return CharCorpus.from_pydoc()


def test_pydoc_corpus_is_deterministic_and_sorted():
    from pydoc_data.topics import topics

    text = load_pydoc_corpus()
    assert text == load_pydoc_corpus()
    assert len(text) > 100_000
    first, second = sorted(topics)[:2]
    assert text.startswith(topics[first] + "\n" + topics[second])


def test_vocab_roundtrip_and_unknown():
    vocab = CharVocab.from_text("banana bread")
    assert vocab.chars == " abdenr"
    assert len(vocab) == 8
    ids = vocab.encode("bread")
    assert ids.dtype == torch.long and ids.tolist() == [3, 7, 5, 2, 4]
    assert vocab.decode(ids) == "bread"
    assert vocab.decode(ids.tolist()) == "bread"
    unknown = vocab.encode("bZ\u00e9\U0001f600")
    assert unknown.tolist() == [3, 0, 0, 0]
    assert vocab.decode(unknown, unk="?") == "b???"
    assert vocab.decode(unknown) == "b" + "\ufffd" * 3


def test_vocab_rebuilt_from_chars_gives_same_ids(corpus):
    rebuilt = CharVocab(corpus.vocab.chars)
    sample = corpus.text[:5000]
    assert torch.equal(rebuilt.encode(sample), corpus.vocab.encode(sample))


def test_vocab_errors():
    vocab = CharVocab("ab")
    with pytest.raises(ValueError):
        vocab.decode([0, 3])
    with pytest.raises(ValueError):
        vocab.decode([-1])
    with pytest.raises(ValueError):
        vocab.decode(torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError):
        CharVocab("aa")
    with pytest.raises(ValueError):
        CharVocab(["ab"])


def test_corpus_vocab_covers_every_split(corpus):
    assert len(corpus.vocab) == len(set(corpus.text)) + 1
    for ids in corpus.ids.values():
        assert (ids != CharVocab.unk_id).all()
    assert corpus.vocab.decode(corpus.ids["val"]) == corpus.split_text("val")


def test_split_spans_contiguous_disjoint_and_covering():
    spans = split_spans(1001)
    assert spans == {"train": (0, 900), "val": (900, 950), "test": (950, 1001)}
    spans = split_spans(12345, train_fraction=0.8, val_fraction=0.1)
    assert spans["train"][0] == 0 and spans["test"][1] == 12345
    assert spans["train"][1] == spans["val"][0] and spans["val"][1] == spans["test"][0]


def test_corpus_split_is_90_5_5_and_deterministic(corpus):
    n = len(corpus)
    parts = [corpus.split_text(s) for s in ("train", "val", "test")]
    assert "".join(parts) == corpus.text
    assert abs(len(parts[0]) / n - 0.9) < 1e-4 and abs(len(parts[1]) / n - 0.05) < 1e-4
    assert CharCorpus.from_pydoc().spans == corpus.spans


@pytest.mark.parametrize(
    "kwargs",
    [
        {"train_fraction": 0.0},
        {"train_fraction": 1.0},
        {"val_fraction": -0.1},
        {"train_fraction": 0.95, "val_fraction": 0.05},
    ],
)
def test_split_spans_rejects_bad_fractions(kwargs):
    with pytest.raises(ValueError):
        split_spans(1000, **kwargs)


def test_split_spans_rejects_tiny_corpus():
    with pytest.raises(ValueError):
        split_spans(5)


def test_eval_windows_tile_without_overlap():
    ids = torch.arange(23)
    ds = CharWindowDataset(ids, 5)
    assert len(ds) == 4  # (23 - 1) // 5
    inputs = torch.cat([ds[k][0] for k in range(len(ds))])
    targets = torch.cat([ds[k][1] for k in range(len(ds))])
    assert torch.equal(inputs, torch.arange(20))
    assert torch.equal(targets, torch.arange(1, 21))


def test_train_windows_seeded_shifted_and_in_range():
    ids = torch.arange(1000)
    ds = CharWindowDataset(ids, 16, random_offsets=True, num_windows=50, seed=3)
    again = CharWindowDataset(ids, 16, random_offsets=True, num_windows=50, seed=3)
    other = CharWindowDataset(ids, 16, random_offsets=True, num_windows=50, seed=4)
    assert len(ds) == 50
    assert torch.equal(ds.offsets, again.offsets)
    assert not torch.equal(ds.offsets, other.offsets)
    for k in range(len(ds)):
        x, y = ds[k]
        assert x.shape == (16,) and y.shape == (16,)
        assert torch.equal(y, x + 1)  # ids are positions here, so the target is the next one
        assert y[-1] < 1000
    first = ds.offsets.clone()
    ds.set_epoch(1)
    assert not torch.equal(first, ds.offsets)
    ds.set_epoch(0)
    assert torch.equal(first, ds.offsets)


def test_corpus_datasets(corpus):
    train = corpus.dataset("train", 32, num_windows=8, seed=0)
    val = corpus.dataset("val", 32)
    assert train.random_offsets and not val.random_offsets
    assert len(val) == (corpus.ids["val"].numel() - 1) // 32
    x, y = val[1]
    text = corpus.split_text("val")
    assert corpus.vocab.decode(x) == text[32:64]
    assert corpus.vocab.decode(y) == text[33:65]


def test_window_dataset_errors(corpus):
    with pytest.raises(ValueError):
        CharWindowDataset(torch.arange(5), 5)
    with pytest.raises(ValueError):
        CharWindowDataset(torch.arange(50).float(), 5)
    with pytest.raises(ValueError):
        CharWindowDataset(torch.arange(50), 0)
    with pytest.raises(ValueError):
        CharWindowDataset(torch.arange(50), 5, num_windows=3)
    with pytest.raises(ValueError):
        corpus.dataset("validation", 8)
