"""seqlab.data.synthetic: the selective-copying and associative-recall tasks, and MixerLM."""
import pytest
import torch

from seqlab.data.synthetic import IGNORE, AssociativeRecall, SelectiveCopying, accuracy, make_batcher
from seqlab.models.stack import MixerLM


def test_selective_copying_targets_are_the_data_tokens_in_order():
    task = SelectiveCopying(seq_len=20, n_tokens=4, vocab=5)
    x, y = task.batch(50, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (50, 24) and task.vocab_size == 7
    assert (x[:, 20:] == 1).all() and ((x[:, :20] == 0) | (x[:, :20] >= 2)).all()
    for xi, yi in zip(x, y):
        data = xi[:20][xi[:20] >= 2]
        assert torch.equal(data, yi[20:]) and (yi[:20] == IGNORE).all()
    positions = {tuple((xi[:20] >= 2).nonzero().flatten().tolist()) for xi in x}
    assert len(positions) > 40                                      # the data moves from example to example
    with pytest.raises(ValueError, match="exceed"):
        SelectiveCopying(seq_len=3, n_tokens=4).batch(1)


def test_associative_recall_asks_for_the_value_paired_with_each_key():
    task = AssociativeRecall(n_pairs=6, n_keys=10, n_values=8, n_queries=9)
    x, y = task.batch(40, torch.Generator().manual_seed(0))
    assert x.shape == (40, 12 + 18) and task.vocab_size == 18
    for xi, yi in zip(x, y):
        keys, values = xi[:12:2], xi[1:12:2]
        assert len(set(keys.tolist())) == 6 and (keys < 10).all() and (values >= 10).all()
        pairs = dict(zip(keys.tolist(), values.tolist()))
        for t in range(12, 30, 2):                                   # query at t, its answer at t + 1
            assert yi[t] == pairs[xi[t].item()] == xi[t + 1]
        assert (yi[:12] == IGNORE).all() and (yi[13::2] == IGNORE).all()
    with pytest.raises(ValueError, match="distinct"):
        AssociativeRecall(n_pairs=11, n_keys=10).batch(1)


def test_batcher_gives_fresh_training_batches_and_a_fixed_val_set():
    get = make_batcher(SelectiveCopying(seq_len=10, n_tokens=2), batch_size=4, val_batches=2)
    assert not torch.equal(get("train")[0], get("train")[0])
    v = [get("val")[0] for _ in range(4)]
    assert torch.equal(v[0], v[2]) and torch.equal(v[1], v[3]) and not torch.equal(v[0], v[1])


def test_accuracy_scores_only_the_asked_positions():
    class Oracle(torch.nn.Module):                                   # predicts the target where there is one
        def __init__(self, y, V):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.y, self.V = y, V

        def forward(self, x):
            return torch.nn.functional.one_hot(self.y.clamp(min=0), self.V).float()

    x, y = AssociativeRecall(n_pairs=4, n_keys=8, n_values=8).batch(10, torch.Generator().manual_seed(1))
    assert accuracy(Oracle(y, 16), x, y) == 1.0
    wrong = y.clone()
    wrong[0, 8] = (y[0, 8] + 1) % 16                                 # one of the 40 answers
    assert accuracy(Oracle(wrong, 16), x, y) == pytest.approx(39 / 40)


def test_a_small_mixer_lm_learns_to_copy_selectively():
    """Attention as the mixer solves a short selective-copying task within a few hundred steps."""
    from seqlab.models.gpt import CausalSelfAttention, GPTConfig
    from seqlab.train import TrainConfig, train

    torch.manual_seed(0)
    task = SelectiveCopying(seq_len=12, n_tokens=2, vocab=4)
    cfg = GPTConfig(vocab_size=task.vocab_size, block_size=14, n_layer=2, n_head=2, d_model=32)

    class Attn(CausalSelfAttention):
        def forward(self, x):
            return super().forward(x)[0]

    class PosLM(MixerLM):                                             # attention needs positions
        def __init__(self):
            super().__init__(task.vocab_size, 32, 2, lambda: Attn(cfg))
            self.pos = torch.nn.Parameter(torch.randn(14, 32) * 0.02)

        def forward(self, idx):
            x = self.embed(idx) + self.pos[: idx.size(1)]
            for block in self.blocks:
                x = block(x)
            return torch.nn.functional.linear(self.ln_f(x), self.embed.weight)

    model = PosLM()
    get = make_batcher(task, 64, val_batches=2)
    train(model, get, TrainConfig(max_steps=400, lr=3e-3, eval_every=0, progress=False, weight_decay=0.0))
    x, y = get.val[0]
    assert accuracy(model, x, y) > 0.9
