"""seqlab.charlm: the shared character-LM protocol of Part VI."""
import math

import torch
import torch.nn.functional as F

from seqlab.charlm import PROTOCOL, gpt_baseline, results_table, shakespeare_chars, train_char_lm, whole_split_loss


class Bigram(torch.nn.Module):
    def __init__(self, V):
        super().__init__()
        self.table = torch.nn.Embedding(V, V)

    def forward(self, idx):
        return self.table(idx)


def test_whole_split_loss_is_the_mean_over_consecutive_windows():
    torch.manual_seed(0)
    model = Bigram(7)
    ids = torch.randint(0, 7, (103,)).numpy()
    expected = F.cross_entropy(model(torch.as_tensor(ids[:100])), torch.as_tensor(ids[1:101])).item()
    assert abs(whole_split_loss(model, ids, 10, "cpu", batch=3) - expected) < 1e-6   # 10 windows of 10


def test_the_protocol_gives_every_model_the_same_batches_and_scores_it():
    data = shakespeare_chars()
    assert data.vocab_size == 65 and len(data.train) == 1003854 and len(data.val) == 111540
    runs = []
    for _ in range(2):
        torch.manual_seed(5)
        model = Bigram(65)
        before = whole_split_loss(model, data.val, 32, "cpu", max_windows=200)
        runs.append(train_char_lm(model, data, "smoke", "cpu", name="bigram"))
    a, b = runs
    assert a.history["train_loss"] == b.history["train_loss"] and a.val_loss == b.val_loss
    assert a.steps == PROTOCOL["smoke"]["max_steps"] and a.params == 65 * 65
    assert whole_split_loss(model, data.val, 32, 'cpu', max_windows=200) < before and abs(a.val_bpc - a.val_loss / math.log(2)) < 1e-12
    gpt = gpt_baseline(65, "cpu")
    assert gpt.block_size == 64 and len(gpt.blocks) == 4 and gpt.cfg.d_model == 128
    assert "bigram" in results_table([a]) and "val bits/char" in results_table([a])
