"""Part VI's character-LM protocol: any language model trained and scored exactly like Part IV's GPT.

    data = shakespeare_chars()                                   # vocabulary 65, nanoGPT's 90/10 split
    gpt = gpt_baseline(data.vocab_size, budget)                  # Lab 8's GPT (4 layers, d 128)
    res = train_char_lm(gpt, data, budget, device, name="GPT")   # a CharLMResult
    print(results_table([res, ...]))

The protocol is nanoGPT's CPU configuration of shakespeare_char, which Lab 8 reproduces:
windows of 64 characters, batches of 12, AdamW (lr 1e-3 after 100 warm-up steps, cosine to
1e-4, beta_2 0.99, weight decay 0.1 on matrices, gradients clipped to norm 1). The budget
sets the number of steps: 2000 (Lab 8's run) on ``gpu``, 1000 on ``cpu`` so that a lab
training three models stays within minutes on a laptop, 20 on ``smoke``. Every model
in a comparison gets the same steps, batches (the same seed draws the same windows) and
schedule; only the architecture changes. The score is the mean cross-entropy over the
**whole** validation split cut into consecutive windows (not a few random batches), in
nats per character; divide by ln 2 for bits.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

PROTOCOL = {   # steps per budget; the rest of the configuration is the same for every budget but smoke
    "smoke": dict(block_size=32, batch_size=8, max_steps=20),
    "cpu": dict(block_size=64, batch_size=12, max_steps=1000),
    "gpu": dict(block_size=64, batch_size=12, max_steps=2000),
}
OPTIM = dict(lr=1e-3, min_lr_ratio=0.1, warmup_steps=100, betas=(0.9, 0.99), weight_decay=0.1, grad_clip=1.0)


@dataclass
class CharData:
    tokenizer: object
    train: object          # numpy int arrays of character ids
    val: object

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size


@dataclass
class CharLMResult:
    name: str
    params: int
    val_loss: float                      # nats per character, whole validation split
    train_loss: float                    # the same on the training split (first windows, as many as val has)
    seconds: float
    chars_per_s: float
    steps: int
    history: dict = field(repr=False, default_factory=dict)

    @property
    def val_bpc(self) -> float:
        return self.val_loss / math.log(2)


def shakespeare_chars() -> CharData:
    """Tiny Shakespeare as characters, split 90/10 as nanoGPT does."""
    from .data import CharTokenizer, load_text, train_val_split

    text = load_text("tinyshakespeare")
    tok = CharTokenizer(text)
    train, val = train_val_split(tok.encode(text))
    return CharData(tok, train, val)


def gpt_baseline(vocab_size: int, budget: str):
    """Lab 8's GPT: 4 layers, 4 heads, d_model 128, no biases, no dropout, context of the protocol."""
    from .models.gpt import GPT, GPTConfig

    return GPT(GPTConfig(vocab_size=vocab_size, block_size=PROTOCOL[budget]["block_size"], n_layer=4, n_head=4,
                         d_model=128, bias=False, dropout=0.0))


def count_params(model) -> int:
    """Parameters, the tied embedding once; a GPT's position table left out (``GPT.num_params``)."""
    if hasattr(model, "num_params"):
        return model.num_params()
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def whole_split_loss(model, ids, block_size: int, device, batch: int = 256, max_windows: int | None = None) -> float:
    """Mean cross-entropy (nats/char) over consecutive windows of ``ids``, each scored in full."""
    was_training = model.training
    model.eval()
    data = torch.as_tensor(ids, dtype=torch.long)
    n = (len(data) - 1) // block_size
    if max_windows is not None:
        n = min(n, max_windows)
    x = data[:n * block_size].view(n, block_size)
    y = data[1:n * block_size + 1].view(n, block_size)
    total = 0.0
    for i in range(0, n, batch):
        logits = model(x[i:i + batch].to(device))
        total += F.cross_entropy(logits.flatten(0, 1).float(), y[i:i + batch].to(device).flatten(),
                                 reduction="sum").item()
    model.train(was_training)
    return total / (n * block_size)


def train_char_lm(model, data: CharData, budget: str, device, name: str = "", seed: int = 1337,
                  progress: bool = False, eval_every: int | None = None) -> CharLMResult:
    """Train ``model`` (idx (B, T) -> logits (B, T, V)) under the protocol; score it on the whole split."""
    from .data import batcher
    from .train import TrainConfig, train

    p = PROTOCOL[budget]
    torch.manual_seed(seed)                                   # the same batches for every model
    model.to(device)
    cfg = TrainConfig(max_steps=p["max_steps"], eval_every=eval_every or max(1, p["max_steps"] // 8),
                      eval_batches=10, progress=progress, **OPTIM)
    out = train(model, batcher(data.train, data.val, p["block_size"], p["batch_size"], device), cfg)
    val = whole_split_loss(model, data.val, p["block_size"], device)
    n_val = (len(data.val) - 1) // p["block_size"]
    tr = whole_split_loss(model, data.train, p["block_size"], device, max_windows=n_val)
    return CharLMResult(name or type(model).__name__, count_params(model), val, tr, out.wall_time_s,
                        out.tokens_per_s, p["max_steps"], out.history)


def results_table(results: list[CharLMResult]) -> str:
    """A plain-text table: parameters, val and train loss, bits per char, time and speed."""
    from .bench import format_table

    rows = [{"model": r.name, "params": f"{r.params:,}", "val nats/char": f"{r.val_loss:.3f}",
             "val bits/char": f"{r.val_bpc:.3f}", "train nats/char": f"{r.train_loss:.3f}",
             "seconds": f"{r.seconds:.0f}", "chars/s": f"{r.chars_per_s:,.0f}"} for r in results]
    return format_table(rows, list(rows[0]))
