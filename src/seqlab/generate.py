"""Sampling from a language model, one token at a time; greedy and beam search for translation.

    ids = generate(model, prompt_ids, max_new_tokens=200, temperature=0.8, top_k=None)
    out = greedy_decode(model, src, src_mask)                # a list of id lists, one per sentence
    out = beam_search(model, src, src_mask, beam_size=5)
    hyps = translate(model, data, ["Ein Hund rennt."])       # raw sentences in, sentences out

A model with ``model.step(token, state) -> (logits, state)`` is fed one token per step and
carries its state: a recurrent model's hidden state (constant memory and time per token), or
a Transformer's key-value cache (GPT). A model with a context window (``model.block_size``)
reads only the last ``block_size`` tokens of the prompt, and once its cache is full the
window slides: every further token is predicted from the last ``block_size`` tokens,
recomputed. Any other model is re-run on the (cropped) context at every step.
"""
from __future__ import annotations

import inspect

import torch

from .train import _map_state


def sample_next(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                top_p: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one token per row from logits: (B, V) -> (B,).

    temperature 0 means greedy (argmax). Otherwise p = softmax(logits / temperature),
    restricted to the top_k most likely tokens when top_k is given, then to the nucleus when
    top_p is given: the most likely tokens whose probabilities sum to at least top_p
    (Holtzman et al., 2020), renormalised.
    """
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = next_token_probs(logits, temperature, top_k, top_p)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


def next_token_probs(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                     top_p: float | None = None) -> torch.Tensor:
    """The distribution :func:`sample_next` draws from: (B, V) logits -> (B, V) probabilities."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 here (0 means greedy in sample_next), got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    logits = logits.float() / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.size(-1)), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if top_p is not None:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        before = sorted_p.cumsum(dim=-1) - sorted_p                   # mass of the more likely tokens
        sorted_p = sorted_p.masked_fill(before >= top_p, 0.0)         # keep tokens until top_p is reached
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return probs


@torch.no_grad()
def generate(model, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None, block_size: int | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Continue idx: (B, T0) by max_new_tokens sampled tokens -> (B, T0 + max_new_tokens).

    block_size: the longest context a model without ``step`` accepts (the prompt is cropped
    to its last block_size tokens); models with ``step`` use their own ``block_size``, if any.
    """
    if idx.dim() != 2 or idx.size(1) < 1:
        raise ValueError(f"idx must be (B, T) with T >= 1 prompt tokens, got {tuple(idx.shape)}")
    was_training = model.training
    model.eval()
    seq = idx
    if hasattr(model, "step"):
        window = getattr(model, "block_size", None)                   # a KV-cached model's context window
        if "return_state" in inspect.signature(model.forward).parameters:
            logits, state = model(idx if window is None else idx[:, -window:], return_state=True)   # read the prompt once
            logits = logits[:, -1]
        else:                                                         # (Mamba, RWKV-7) read it step by step
            state = None
            for t in range(idx.size(1)):
                logits, state = model.step(idx[:, t], state)
        for _ in range(max_new_tokens):
            nxt = sample_next(logits, temperature, top_k, top_p, generator)
            seq = torch.cat([seq, nxt[:, None]], dim=1)
            if window is not None and state["pos"] >= window:         # the cache is full: slide the window
                logits, state = model(seq[:, -window:], return_state=True)
                logits = logits[:, -1]
            else:
                logits, state = model.step(nxt, state)
    else:
        for _ in range(max_new_tokens):
            context = seq if block_size is None else seq[:, -block_size:]
            nxt = sample_next(model(context)[:, -1], temperature, top_k, top_p, generator)
            seq = torch.cat([seq, nxt[:, None]], dim=1)
    model.train(was_training)
    return seq


# ----------------------------------------------------------------------------- translation
# An encoder-decoder (seqlab.models.seq2seq.Seq2Seq, seqlab.models.transformer.Transformer)
# offers  state = model.encode(src, src_mask)  and  logits, state = model.decode_step(y_prev, state),
# with every tensor of the state batch-first. That is all decoding needs.

BOS, EOS = 2, 3                     # seqlab.data.translation's special ids


@torch.no_grad()
def greedy_decode(model, src, src_mask, max_len: int = 80, bos: int = BOS, eos: int = EOS,
                  return_attention: bool = False):
    """Pick the most likely word at every step until <eos> (or max_len words).

    src, src_mask: (B, S). Returns a list of B id lists (without <eos>); with
    return_attention also a list of B tensors (T_i, S_i) of the state's "attn" weights
    for each output word (T_i includes the <eos> step) over the real source tokens.
    """
    was_training = model.training
    model.eval()
    B = src.size(0)
    state = model.encode(src, src_mask)
    y = torch.full((B,), bos, dtype=torch.long, device=src.device)
    done = torch.zeros(B, dtype=torch.bool, device=src.device)
    tokens, attn = [], []
    for _ in range(max_len):
        logits, state = model.decode_step(y, state)
        y = logits.argmax(-1)                                 # y_t = argmax_w p(w | y_<t, x)
        tokens.append(y)
        if return_attention:
            attn.append(state["attn"])
        done |= y == eos
        if done.all():
            break
    model.train(was_training)
    tokens = torch.stack(tokens, 1).tolist()
    out = [row[:row.index(eos)] if eos in row else row for row in tokens]
    if not return_attention:
        return out
    attn = torch.stack(attn, 1)                               # (B, T, S)
    lengths = src_mask.sum(1).tolist()
    # row b's real source tokens are its first lengths[b] positions (right padding)
    return out, [attn[b, :len(out[b]) + 1, :lengths[b]].cpu() for b in range(B)]


@torch.no_grad()
def beam_search(model, src, src_mask, beam_size: int = 5, max_len: int = 80, bos: int = BOS,
                eos: int = EOS, length_penalty: float = 1.0):
    """Keep the beam_size best partial translations at every step instead of one.

    Each of the B sentences gets beam_size hypotheses, decoded together as a batch of
    B * beam_size rows. At every step each hypothesis is extended by every word,
    scored by its total log-probability, and the best beam_size of the
    beam_size * V candidates survive (state rows are reordered to follow them). A
    hypothesis that has produced <eos> is finished: it is carried on unchanged. At the
    end the winner maximises  log p(y | x) / len(y)^length_penalty  (0: raw sum, which
    favours short outputs; 1: mean log-probability per word).
    Returns a list of B id lists (without <eos>). beam_size 1 equals greedy decoding.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    was_training = model.training
    model.eval()
    B, K, dev = src.size(0), beam_size, src.device
    state = _map_state(lambda t: t.repeat_interleave(K, dim=0), model.encode(src, src_mask))
    scores = torch.full((B, K), float("-inf"), device=dev)
    scores[:, 0] = 0.0                                        # start from one live hypothesis
    y = torch.full((B * K,), bos, dtype=torch.long, device=dev)
    history = torch.zeros(B * K, 0, dtype=torch.long, device=dev)
    finished = torch.zeros(B * K, dtype=torch.bool, device=dev)
    for _ in range(max_len):
        logits, state = model.decode_step(y, state)
        logp = torch.log_softmax(logits.float(), dim=-1)     # (B*K, V)
        V = logp.size(-1)
        # a finished hypothesis may only "extend" by <eos> at no cost: it stays as it is
        frozen = torch.full_like(logp, float("-inf"))
        frozen[:, eos] = 0.0
        logp = torch.where(finished[:, None], frozen, logp)
        cand = (scores[:, :, None] + logp.view(B, K, V)).view(B, K * V)
        scores, flat = cand.topk(K, dim=-1)                   # (B, K) best continuations
        beam, word = flat // V, flat % V
        rows = (torch.arange(B, device=dev)[:, None] * K + beam).view(-1)
        state = _map_state(lambda t: t.index_select(0, rows), state)
        y = word.view(-1)
        history = torch.cat([history.index_select(0, rows), y[:, None]], dim=1)
        finished = finished.index_select(0, rows) | (y == eos)
        if finished.all():
            break
    model.train(was_training)
    out = []
    for b in range(B):
        best, best_score = None, float("-inf")
        for k in range(K):
            row = history[b * K + k].tolist()
            ids = row[:row.index(eos)] if eos in row else row
            norm = scores[b, k].item() / max(1, len(ids) + 1) ** length_penalty   # + 1 counts <eos>
            if norm > best_score:
                best, best_score = ids, norm
        out.append(best)
    return out


def translate(model, data, sentences: list[str], beam_size: int = 1, batch_size: int = 64,
              max_len: int = 80, **kwargs) -> list[str]:
    """Raw source sentences -> detokenized translations (greedy when beam_size is 1).

    data: a seqlab.data.Translation (its vocabularies and tokenizer). Sentences are
    decoded in batches sorted by length and returned in the input order.
    """
    from .data.translation import make_batch

    device = next(model.parameters()).device
    ids = data.encode_source(sentences)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out = [None] * len(ids)
    for i in range(0, len(order), batch_size):
        idx = order[i:i + batch_size]
        (src, mask, _), _ = make_batch([ids[j] for j in idx], [[] for _ in idx])
        src, mask = src.to(device), mask.to(device)
        if beam_size == 1:
            hyps = greedy_decode(model, src, mask, max_len=max_len)
        else:
            hyps = beam_search(model, src, mask, beam_size=beam_size, max_len=max_len, **kwargs)
        for j, h in zip(idx, hyps):
            out[j] = data.decode_target(h)
    return out
