"""Corpora (verified download, corrupted / partial / offline cases), tokenizers, batches."""
import hashlib
import http.server
import threading
from functools import partial

import numpy as np
import pytest
import torch

from seqlab import data
from seqlab.data import StreamBatcher, corpora

CONTENT = b"To be, or not to be, that is the question.\n" * 50


@pytest.fixture
def fake_server(tmp_path):
    """A local HTTP server on 127.0.0.1 serving tmp_path/www; yields (base_url, folder, log)."""
    www = tmp_path / "www"
    www.mkdir()
    log = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            log.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(www)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", www, log
    server.shutdown()
    server.server_close()


@pytest.fixture
def registry(monkeypatch, tmp_path, fake_server):
    """A corpus 'toy/play.txt' registered at the fake server; empty cache; no SEQLAB_DATA."""
    base, www, log = fake_server
    remote = corpora.RemoteFile(f"{base}/play.txt", hashlib.sha256(CONTENT).hexdigest())
    monkeypatch.setitem(corpora.CORPORA, "toy", {"play.txt": remote})
    monkeypatch.delenv("SEQLAB_DATA", raising=False)
    monkeypatch.setenv("SEQLAB_CACHE", str(tmp_path / "cache"))
    return www, log, tmp_path / "cache" / "toy" / "play.txt"


def test_download_verifies_and_caches(registry):
    www, log, target = registry
    (www / "play.txt").write_bytes(CONTENT)
    path = data.fetch("toy", "play.txt")
    assert path == target and path.read_bytes() == CONTENT
    assert len(log) == 1
    data.fetch("toy", "play.txt")  # second call: from the cache, no request
    assert len(log) == 1
    assert not list(target.parent.glob("*.part"))


def test_corrupted_cache_is_deleted_and_downloaded_again(registry):
    www, log, target = registry
    (www / "play.txt").write_bytes(CONTENT)
    target.parent.mkdir(parents=True)
    target.write_bytes(CONTENT[:100])  # a partial file under the real name
    assert data.fetch("toy", "play.txt").read_bytes() == CONTENT
    assert len(log) == 1


def test_wrong_download_is_retried_once_then_a_clear_error(registry):
    www, log, target = registry
    (www / "play.txt").write_bytes(CONTENT[:-7])  # server sends a truncated file
    with pytest.raises(data.DataError, match="sha256"):
        data.fetch("toy", "play.txt")
    assert len(log) == 2  # first try + one retry
    assert not target.exists()  # never used, never left under the real name
    assert not list(target.parent.glob("*"))  # no temporary files left either


def test_offline_error_names_file_url_and_folder(registry, monkeypatch):
    www, log, target = registry
    monkeypatch.setitem(
        corpora.CORPORA, "toy", {"play.txt": corpora.RemoteFile("http://127.0.0.1:9/play.txt", "0" * 64)}
    )
    with pytest.raises(data.DataError) as err:
        data.fetch("toy", "play.txt")
    message = str(err.value)
    assert "toy/play.txt" in message and "http://127.0.0.1:9/play.txt" in message
    assert str(target) in message


def test_seqlab_data_folder_is_used_first(registry, monkeypatch, tmp_path):
    www, log, target = registry
    shared = tmp_path / "shared"
    (shared / "toy").mkdir(parents=True)
    (shared / "toy" / "play.txt").write_bytes(CONTENT)
    monkeypatch.setenv("SEQLAB_DATA", str(shared))
    assert data.fetch("toy", "play.txt") == shared / "toy" / "play.txt"
    assert log == []


def test_wrong_copy_in_seqlab_data_is_ignored_not_deleted(registry, monkeypatch, tmp_path):
    www, log, target = registry
    (www / "play.txt").write_bytes(CONTENT)
    shared = tmp_path / "shared"
    (shared / "toy").mkdir(parents=True)
    (shared / "toy" / "play.txt").write_bytes(b"something else")
    monkeypatch.setenv("SEQLAB_DATA", str(shared))
    assert data.fetch("toy", "play.txt") == target
    assert (shared / "toy" / "play.txt").read_bytes() == b"something else"


def test_unknown_corpus_and_file():
    with pytest.raises(KeyError, match="known"):
        data.fetch("nope", "x")
    with pytest.raises(KeyError, match="input.txt"):
        data.fetch("tinyshakespeare", "x")


def test_real_corpora_match_the_registry():
    text = data.load_text("tinyshakespeare")
    assert len(text) == 1_115_394 and text.startswith("First Citizen:")
    en, de = data.load_multi30k("val")
    assert len(en) == len(de) == 1014
    with pytest.raises(ValueError, match="split"):
        data.load_multi30k("dev")


def test_char_tokenizer_round_trip_and_unknown_characters():
    tok = data.CharTokenizer("hello world")
    assert tok.vocab_size == len(set("hello world"))
    ids = tok.encode("low hold")
    assert ids.dtype == np.int64 and tok.decode(ids) == "low hold"
    assert tok.itos == sorted(tok.itos)
    with pytest.raises(ValueError, match="'z'"):
        tok.encode("lazy")


def test_word_tokenizer_unknowns_and_punctuation():
    tok = data.WordTokenizer("the cat sat. the dog sat!")
    assert tok.itos[0] == "<unk>"
    ids = tok.encode("the bird sat.")
    assert ids[1] == tok.unk_id and tok.decode(ids) == "the <unk> sat."
    assert data.split_words("I'll go, now!") == ["I'll", "go", ",", "now", "!"]
    rare = data.WordTokenizer("a a b", min_count=2)
    assert rare.itos == ["<unk>", "a"]


def test_split_is_first_90_last_10():
    train, val = data.train_val_split(list(range(100)))
    assert train == list(range(90)) and val == list(range(90, 100))
    with pytest.raises(ValueError):
        data.train_val_split([1, 2], 1.5)


def test_random_windows_are_shifted_by_one_and_reproducible():
    stream = torch.arange(1000)
    torch.manual_seed(0)
    x, y = data.random_windows(stream, block_size=16, batch_size=4)
    assert x.shape == y.shape == (4, 16)
    assert torch.equal(y, x + 1)  # on arange, the next token is the id plus one
    torch.manual_seed(0)
    x2, _ = data.random_windows(stream, block_size=16, batch_size=4)
    assert torch.equal(x, x2)
    with pytest.raises(ValueError, match="longer than block_size"):
        data.random_windows(torch.arange(8), block_size=8, batch_size=1)
    get_batch = data.batcher(np.arange(500), np.arange(500, 600), block_size=8, batch_size=2)
    xv, _ = get_batch("val")
    assert xv.min() >= 500
    with pytest.raises(ValueError, match="split"):
        get_batch("test")


def test_stream_batcher_windows_continue_each_other():
    data_ = torch.arange(1000)
    sb = StreamBatcher(data_[:801], data_[801:], block_size=10, batch_size=4)
    # 800 x-tokens per split side -> 200 per stream -> 20 windows of 10
    assert sb.n_windows["train"] == 20
    x0, y0 = sb("train")
    x1, y1 = sb("train")
    assert x0.shape == y0.shape == (4, 10)
    assert torch.equal(y0, x0 + 1) and torch.equal(y1, x1 + 1)          # y is x shifted by one
    assert torch.equal(x1[:, 0], x0[:, -1] + 1)                          # window 1 continues window 0
    assert torch.equal(x0[:, 0], torch.tensor([0, 200, 400, 600]))       # streams are contiguous quarters
    # the eval walk starts at the beginning and does not move the training cursor
    walked = list(sb.windows("train", 2))
    assert torch.equal(walked[0][0], x0) and torch.equal(walked[1][0], x1)
    assert sb.cursor["train"] == 2
    assert len(list(sb.windows("val"))) == sb.n_windows["val"]


def test_stream_batcher_wraps_around_and_saves_its_cursor():
    sb = StreamBatcher(torch.arange(101), torch.arange(101), block_size=5, batch_size=2)
    assert sb.n_windows["train"] == 10 and sb.starts_new_pass()
    first = sb("train")
    for _ in range(9):
        sb("train")
    assert sb.starts_new_pass()
    assert torch.equal(sb("train")[0], first[0])
    saved = sb.state_dict()
    expected = sb("train")
    sb.load_state_dict(saved)
    assert torch.equal(sb("train")[0], expected[0])
    with pytest.raises(ValueError, match="split"):
        sb("test")


def test_stream_batcher_too_short_is_a_clear_error():
    with pytest.raises(ValueError, match="val split .* too short"):
        StreamBatcher(torch.arange(1000), torch.arange(20), block_size=8, batch_size=4)
