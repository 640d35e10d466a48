"""Sampling from a language model, one token at a time.

    ids = generate(model, prompt_ids, max_new_tokens=200, temperature=0.8, top_k=None)

A model with ``model.step(token, state) -> (logits, state)`` (the recurrent models) is
fed one token per step and carries its state: constant memory and time per token.
Any other model is re-run on the (cropped) context at every step.
"""
from __future__ import annotations

import torch


def sample_next(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one token per row from logits: (B, V) -> (B,).

    temperature 0 means greedy (argmax). Otherwise p = softmax(logits / temperature),
    restricted to the top_k most likely tokens when top_k is given.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.size(-1)), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


@torch.no_grad()
def generate(model, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
             top_k: int | None = None, block_size: int | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Continue idx: (B, T0) by max_new_tokens sampled tokens -> (B, T0 + max_new_tokens).

    block_size: the longest context a non-recurrent model accepts (the prompt is cropped
    to its last block_size tokens); ignored for models with ``step``.
    """
    if idx.dim() != 2 or idx.size(1) < 1:
        raise ValueError(f"idx must be (B, T) with T >= 1 prompt tokens, got {tuple(idx.shape)}")
    was_training = model.training
    model.eval()
    out = [idx]
    if hasattr(model, "step"):
        logits, state = model(idx, return_state=True)     # read the prompt once
        logits = logits[:, -1]
        for _ in range(max_new_tokens):
            nxt = sample_next(logits, temperature, top_k, generator)
            out.append(nxt[:, None])
            logits, state = model.step(nxt, state)
    else:
        seq = idx
        for _ in range(max_new_tokens):
            context = seq if block_size is None else seq[:, -block_size:]
            nxt = sample_next(model(context)[:, -1], temperature, top_k, generator)
            seq = torch.cat([seq, nxt[:, None]], dim=1)
        out = [seq]
    model.train(was_training)
    return torch.cat(out, dim=1)
