"""BERT: a Transformer encoder pre-trained by filling in masked tokens (Part IV).

    cfg = BertConfig(vocab_size=1024, max_len=128, n_layer=4, n_head=4, d_model=128, d_ff=512)
    mlm = BertForMaskedLM(cfg)                        # pre-training: idx (B, T) -> logits (B, T, V)
    inputs, labels = mask_tokens(idx, mask_id=..., vocab_size=..., special_ids=...)   # 15%, 80/10/10
    clf = BertClassifier(cfg, n_classes=5)            # fine-tuning: idx (B, T) -> class logits (B, C)
    clf.bert.load_state_dict(mlm.bert.state_dict())   # start from the pre-trained encoder
    mlm = BertForMaskedLM.from_hf(hf_model.state_dict(), cfg)   # Hugging Face BertForMaskedLM weights

The model of Devlin et al. (2019): the encoder of Vaswani et al. (2017) (post-LN, GELU)
reading a whole sequence in both directions, no causal mask:

    x_t = LN(E_word[w_t] + E_pos[t] + E_type[s_t])             embeddings (s_t: sentence A or B)
    x   = LN(x + Attn(x));  x = LN(x + FFN(x))                  each of n_layer encoder layers

Because every position sees every other, BERT cannot be trained to predict the next
token. It is trained as a **masked language model**: 15% of the positions are chosen, and
of those 80% are replaced by [MASK], 10% by a random token and 10% left unchanged; the
model must predict the original token at the chosen positions only. The MLM head is a
dense layer, GELU and LayerNorm, then the (tied) word embedding matrix plus a bias.

``BertConfig(position_init="sinusoidal")`` starts the learned position embeddings from the
sin/cos table of Vaswani et al. (scaled to rms 0.02) instead of noise, which shortens the
early plateau of masked-LM training on small models (Lab 9); the architecture is unchanged.

For classification a **pooler** (dense + tanh) reads the first position, the [CLS] token,
and a linear layer maps it to the classes (``BertForSequenceClassification``'s layout).

The encoder layers are :class:`seqlab.models.transformer.EncoderLayer` (post-LN, GELU,
LayerNorm eps 1e-12). One difference from Hugging Face's BERT: EncoderLayer also applies
dropout inside the FFN, after the GELU. With dropout 0 (the equivalence tests) they agree.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attention import SinusoidalPositionalEncoding
from .transformer import EncoderLayer

IGNORE = -100                       # the label of positions that are not predicted (F.cross_entropy's default)


@dataclass
class BertConfig:
    vocab_size: int = 30522
    max_len: int = 512              # positions (Hugging Face: max_position_embeddings)
    n_layer: int = 12
    n_head: int = 12
    d_model: int = 768              # hidden_size
    d_ff: int = 3072                # intermediate_size
    dropout: float = 0.1            # hidden and attention dropout
    type_vocab_size: int = 2        # sentence A / B
    layer_norm_eps: float = 1e-12
    position_init: str = "normal"   # "normal": BERT's N(0, 0.02); "sinusoidal": see BERT.__init__


class BERT(nn.Module):
    """The encoder: idx (B, T) -> hidden states (B, T, D). pad_mask: (B, T), True = padding."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.cfg = cfg
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.position_embeddings = nn.Embedding(cfg.max_len, cfg.d_model)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, cfg.d_model)
        self.emb_norm = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps)
        self.emb_drop = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(
            EncoderLayer(cfg.d_model, cfg.n_head, cfg.d_ff, cfg.dropout, norm_first=False, activation="gelu",
                         layer_norm_eps=cfg.layer_norm_eps) for _ in range(cfg.n_layer))
        self.apply(_init_weights)
        if cfg.position_init == "sinusoidal":
            # Vaswani et al.'s sin/cos table, scaled to BERT's scale (rms 0.02), as the *starting point* of the
            # learned position embeddings. A neighbour at offset k is then a fixed rotation away at every
            # position, so attention learns "look at the next character" in one shared pattern instead
            # of one pattern per position, and the masked-LM loss leaves its early plateau sooner.
            table = SinusoidalPositionalEncoding(cfg.d_model, cfg.max_len).pe       # (max_len, D), rms 1/sqrt(2)
            with torch.no_grad():
                self.position_embeddings.weight.copy_(table * (0.02 * math.sqrt(2)))
        elif cfg.position_init != "normal":
            raise ValueError(f"position_init must be 'normal' or 'sinusoidal', got {cfg.position_init!r}")

    def forward(self, idx, pad_mask=None, token_type=None):
        B, T = idx.shape
        if T > self.cfg.max_len:
            raise ValueError(f"{T} positions exceed max_len={self.cfg.max_len}")
        if token_type is None:
            token_type = torch.zeros_like(idx)
        pos = torch.arange(T, device=idx.device)
        x = self.word_embeddings(idx) + self.position_embeddings(pos) + self.token_type_embeddings(token_type)
        x = self.emb_drop(self.emb_norm(x))                                    # (B, T, D)
        for layer in self.layers:
            x = layer(x, pad_mask)
        return x


def _init_weights(module):
    """BERT's initialisation: normal(0, 0.02) weights, zero biases, LayerNorm gain 1."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
    if getattr(module, "in_proj_weight", None) is not None:               # seqlab's MultiHeadAttention
        nn.init.normal_(module.in_proj_weight, mean=0.0, std=0.02)
        nn.init.zeros_(module.in_proj_bias)


class BertForMaskedLM(nn.Module):
    """Encoder + MLM head: idx (B, T) -> logits (B, T, V), the decoder tied to the word embeddings."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.bert = BERT(cfg)
        self.transform = nn.Linear(cfg.d_model, cfg.d_model)
        self.transform_norm = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps)
        self.decoder_bias = nn.Parameter(torch.zeros(cfg.vocab_size))
        _init_weights(self.transform)

    def forward(self, idx, pad_mask=None, token_type=None):
        h = self.bert(idx, pad_mask, token_type)
        h = self.transform_norm(F.gelu(self.transform(h)))                    # LN(GELU(W h + b))
        return h @ self.bert.word_embeddings.weight.T + self.decoder_bias     # tied decoder: (B, T, V)

    @classmethod
    def from_hf(cls, state_dict: dict, cfg: BertConfig) -> "BertForMaskedLM":
        """Weights of a Hugging Face ``BertForMaskedLM`` state dict (query/key/value stacked into
        ``in_proj_weight``, torch's layout)."""
        model = cls(cfg).to(state_dict["bert.embeddings.word_embeddings.weight"].dtype)
        ours = _encoder_from_hf(state_dict, cfg, prefix="bert.")
        ours.update({"transform.weight": state_dict["cls.predictions.transform.dense.weight"],
                     "transform.bias": state_dict["cls.predictions.transform.dense.bias"],
                     "transform_norm.weight": state_dict["cls.predictions.transform.LayerNorm.weight"],
                     "transform_norm.bias": state_dict["cls.predictions.transform.LayerNorm.bias"],
                     "decoder_bias": state_dict.get("cls.predictions.bias",
                                                    state_dict.get("cls.predictions.decoder.bias"))})
        model.load_state_dict(ours)
        return model


class BertClassifier(nn.Module):
    """Encoder + pooler (dense + tanh on [CLS], position 0) + linear: idx (B, T) -> (B, n_classes)."""

    def __init__(self, cfg: BertConfig, n_classes: int):
        super().__init__()
        self.bert = BERT(cfg)
        self.pooler = nn.Linear(cfg.d_model, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(cfg.d_model, n_classes)
        _init_weights(self.pooler)
        _init_weights(self.classifier)

    def forward(self, idx, pad_mask=None, token_type=None):
        h = self.bert(idx, pad_mask, token_type)
        pooled = torch.tanh(self.pooler(h[:, 0]))                              # the [CLS] position
        return self.classifier(self.drop(pooled))

    @classmethod
    def from_hf(cls, state_dict: dict, cfg: BertConfig, n_classes: int) -> "BertClassifier":
        """Weights of a Hugging Face ``BertForSequenceClassification`` state dict."""
        model = cls(cfg, n_classes).to(state_dict["bert.embeddings.word_embeddings.weight"].dtype)
        ours = _encoder_from_hf(state_dict, cfg, prefix="bert.")
        ours.update({"pooler.weight": state_dict["bert.pooler.dense.weight"],
                     "pooler.bias": state_dict["bert.pooler.dense.bias"],
                     "classifier.weight": state_dict["classifier.weight"],
                     "classifier.bias": state_dict["classifier.bias"]})
        model.load_state_dict(ours)
        return model


def _encoder_from_hf(sd: dict, cfg: BertConfig, prefix: str) -> dict:
    """Hugging Face BERT encoder weights under seqlab's names."""
    e = prefix + "embeddings."
    out = {"bert.word_embeddings.weight": sd[e + "word_embeddings.weight"],
           "bert.position_embeddings.weight": sd[e + "position_embeddings.weight"],
           "bert.token_type_embeddings.weight": sd[e + "token_type_embeddings.weight"],
           "bert.emb_norm.weight": sd[e + "LayerNorm.weight"], "bert.emb_norm.bias": sd[e + "LayerNorm.bias"]}
    for i in range(cfg.n_layer):
        h, o = f"{prefix}encoder.layer.{i}.", f"bert.layers.{i}."
        out[o + "self_attn.in_proj_weight"] = torch.cat([sd[h + f"attention.self.{n}.weight"]
                                                         for n in ("query", "key", "value")])
        out[o + "self_attn.in_proj_bias"] = torch.cat([sd[h + f"attention.self.{n}.bias"]
                                                       for n in ("query", "key", "value")])
        pairs = {"self_attn.out_proj": "attention.output.dense", "norm1": "attention.output.LayerNorm",
                 "linear1": "intermediate.dense", "linear2": "output.dense", "norm2": "output.LayerNorm"}
        for ours, theirs in pairs.items():
            out[o + ours + ".weight"] = sd[h + theirs + ".weight"]
            out[o + ours + ".bias"] = sd[h + theirs + ".bias"]
    return out


def mask_tokens(idx: torch.Tensor, *, mask_id: int, vocab_size: int, special_ids=(), p: float = 0.15,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking: (inputs, labels) for the masked-LM loss. idx: (B, T) token ids.

    Each position that is not a special token (padding, [CLS], [SEP], ...) is chosen with
    probability p. Of the chosen, 80% become [MASK], 10% a random token, 10% stay as they
    are. labels hold the original token at the chosen positions and IGNORE (-100) elsewhere,
    so ``F.cross_entropy(logits.flatten(0, 1), labels.flatten())`` scores the chosen only.
    """
    special = torch.zeros_like(idx, dtype=torch.bool)
    for s in special_ids:
        special |= idx == s
    u = torch.rand(idx.shape, generator=generator, device=idx.device)
    chosen = (u < p) & ~special
    labels = torch.where(chosen, idx, torch.full_like(idx, IGNORE))
    r = torch.rand(idx.shape, generator=generator, device=idx.device)
    inputs = idx.clone()
    inputs[chosen & (r < 0.8)] = mask_id                                       # 80%: [MASK]
    to_random = chosen & (r >= 0.8) & (r < 0.9)                                # 10%: a random token
    inputs[to_random] = torch.randint(vocab_size, (int(to_random.sum()),), generator=generator,
                                      device=idx.device)
    return inputs, labels                                                      # 10%: unchanged
