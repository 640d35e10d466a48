"""Mixture of experts, DeepSeek style: many small feed-forward networks, a few per token (Part VI).

    moe = MoE(MoEConfig(d_model=128, d_expert=64, n_routed=16, n_shared=1, top_k=2))
    y = moe(x)                                          # x: (B, T, D) -> (B, T, D)
    experts, weights = moe.route(x)                     # which experts each token goes to: (B, T, K) each
    model = MoEGPT(GPTConfig(...), MoEConfig(...))      # a GPT whose MLPs are MoE layers
    model.extra_loss(); model.after_step()              # called by seqlab.train.train at every step

A Transformer block's MLP holds most of its parameters and does the same work for every
token. A mixture-of-experts layer replaces it by N_r *routed* experts (each an MLP) and a
router that sends each token to K_r of them, so that the parameters grow with N_r while the
compute per token grows with K_r only (Shazeer et al. 2017; GShard; Switch). DeepSeekMoE
(Dai et al. 2024) makes the experts *fine-grained* (many narrow experts, more of them per
token) and adds N_s *shared* experts that every token uses. DeepSeek-V3 (2024) writes the
layer, for a token u_t (D,), as

    h_t    = u_t + sum_{i <= N_s} FFN^s_i(u_t) + sum_{i <= N_r} g_{i,t} FFN^r_i(u_t)
    s_{i,t} = sigmoid(u_t . e_i)                                  affinity to expert i (centroid e_i)
    g'_{i,t} = s_{i,t}  if  s_{i,t} + b_i  is among the K_r largest  else 0
    g_{i,t} = scale * g'_{i,t} / sum_j g'_{j,t}                   weights over the chosen experts

(the residual u_t is added by the block, not here). Each expert is a SwiGLU MLP:
FFN(u) = W_down (SiLU(W_gate u) * W_up u). The N_s shared experts are stored as one SwiGLU
of width N_s d_expert, which is the same function.

Load balance. Left alone, a router tends to send most tokens to a few experts, which then
learn fastest and attract still more tokens (collapse). Two remedies are built in:

- ``balance="aux"``: the Switch / GShard auxiliary loss (Fedus et al. 2022; Lepikhin et al.
  2021), in DeepSeek's normalisation, added to the LM loss with weight alpha:
      f_i = N_r / (K_r N) * #{tokens t: i in TopK(t)}       (1 for every i when balanced)
      P_i = (1/N) sum_t p_{i,t}                             p: the router's probabilities
      L_aux = alpha * sum_i f_i P_i                          (= alpha when balanced)
  (Hugging Face's Mixtral computes K_r times this quantity; tests/test_moe.py checks it.)
- ``balance="bias"``: DeepSeek-V3's auxiliary-loss-free balancing (Wang et al. 2024). A bias
  b_i per expert is added to the affinities *for the choice only* (the weights g use s, not
  s + b), and after every training step it moves a fixed amount gamma toward balance:
      b_i <- b_i + gamma * sign(mean_j c_j - c_i)           c_i: tokens routed to expert i in the step
  No gradient touches b, so it steers the routing without pulling the LM loss away.

``router="softmax"`` gives the classic router for comparison (Switch, GShard, Mixtral):
p = softmax(u W^T) over all experts, the K_r largest kept and (with ``norm_topk``)
renormalised to sum to 1. ``n_group > 1`` restricts each token to experts in its
``topk_group`` best groups (DeepSeek-V3's node-limited routing; a group's score is the sum
of its two largest biased affinities).

Parameter names map one to one onto Hugging Face's ``DeepseekV3MoE`` (transformers 5.24, the
version requirements-dev.txt pins): ``MoE.load_hf_deepseek_v3`` is that list of copies.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .gpt import GPT, GPTConfig

ROUTERS = ("sigmoid", "softmax")
BALANCES = ("none", "aux", "bias")


@dataclass
class MoEConfig:
    d_model: int = 128
    d_expert: int = 64          # hidden width of one expert (DeepSeek: moe_intermediate_size)
    n_routed: int = 16          # N_r routed experts (0: a dense SwiGLU MLP of the shared experts alone)
    n_shared: int = 1           # N_s shared experts, used by every token
    top_k: int = 2              # K_r routed experts per token
    n_group: int = 1            # group-limited routing: N_r experts in n_group groups ...
    topk_group: int = 1         # ... of which each token may use topk_group
    router: str = "sigmoid"     # "sigmoid" (DeepSeek-V3) or "softmax" (Switch, GShard, Mixtral)
    norm_topk: bool = True      # renormalise the K_r chosen weights to sum to 1
    scale: float = 1.0          # routed_scaling_factor: multiplies the chosen weights
    balance: str = "bias"       # "bias" (loss-free, DeepSeek-V3), "aux" (Switch/GShard loss), "none"
    aux_weight: float = 0.01    # alpha of the auxiliary loss
    bias_speed: float = 1e-3    # gamma of the bias update

    def __post_init__(self):
        if self.router not in ROUTERS:
            raise ValueError(f"router must be one of {ROUTERS}, got {self.router!r}")
        if self.balance not in BALANCES:
            raise ValueError(f"balance must be one of {BALANCES}, got {self.balance!r}")
        if self.n_routed < 0 or self.n_shared < 0 or self.n_routed + self.n_shared == 0:
            raise ValueError(f"need at least one expert: n_routed={self.n_routed}, n_shared={self.n_shared}")
        if self.n_routed:
            if self.n_routed % self.n_group:
                raise ValueError(f"n_routed={self.n_routed} must be divisible by n_group={self.n_group}")
            if not 1 <= self.topk_group <= self.n_group:
                raise ValueError(f"topk_group={self.topk_group} must be in 1..n_group={self.n_group}")
            allowed = self.topk_group * self.n_routed // self.n_group
            if not 1 <= self.top_k <= allowed:
                raise ValueError(f"top_k={self.top_k} must be in 1..{allowed} (the experts of topk_group groups)")


class SwiGLU(nn.Module):
    """FFN(u) = W_down (SiLU(W_gate u) * W_up u): (..., D) -> (..., D), hidden width ``d_hidden``."""

    def __init__(self, d_model: int, d_hidden: int):
        super().__init__()
        self.gate_proj = nn.Linear(d_model, d_hidden, bias=False)
        self.up_proj = nn.Linear(d_model, d_hidden, bias=False)
        self.down_proj = nn.Linear(d_hidden, d_model, bias=False)

    def forward(self, u):
        return self.down_proj(F.silu(self.gate_proj(u)) * self.up_proj(u))


class Router(nn.Module):
    """Scores every expert for every token and picks K_r of them.

    u: (N, D) -> weights g (N, K), experts (N, K) (indices), probs (N, E) (the affinities s,
    or the softmax probabilities: what the auxiliary loss averages).
    """

    def __init__(self, cfg: MoEConfig):
        super().__init__()
        self.cfg = cfg
        self.weight = nn.Parameter(torch.empty(cfg.n_routed, cfg.d_model))   # rows: the centroids e_i
        nn.init.normal_(self.weight, std=0.02)
        # b_i: steers the choice only; moved by MoEGPT.after_step, never by the optimiser
        self.register_buffer("e_score_correction_bias", torch.zeros(cfg.n_routed))

    def forward(self, u: torch.Tensor):
        c = self.cfg
        # route in float32 at least, as DeepSeek-V3 does: in bfloat16 (mixed precision) many scores tie
        dtype = torch.promote_types(u.dtype, torch.float32)
        with torch.autocast(u.device.type, enabled=False):
            logits = u.to(dtype) @ self.weight.to(dtype).T                     # (N, E)  u_t . e_i
        if c.router == "sigmoid":
            probs = torch.sigmoid(logits)                                      # s_{i,t}
        else:
            probs = torch.softmax(logits, dim=-1)                              # p_{i,t}
        choice = probs + self.e_score_correction_bias                         # s + b: used to choose only
        if c.n_group > 1:                                                      # group-limited routing
            per_group = choice.view(-1, c.n_group, c.n_routed // c.n_group)    # (N, G, E/G)
            group_score = per_group.topk(min(2, per_group.size(-1)), dim=-1).values.sum(-1)   # (N, G)
            keep = torch.zeros_like(group_score, dtype=torch.bool)
            keep.scatter_(1, group_score.topk(c.topk_group, dim=-1).indices, True)
            choice = choice.masked_fill(~keep.repeat_interleave(c.n_routed // c.n_group, dim=1), float("-inf"))
        experts = choice.topk(c.top_k, dim=-1).indices                         # (N, K)  TopK(s + b)
        g = probs.gather(1, experts)                                           # g'_{i,t} = s_{i,t}
        if c.norm_topk:
            g = g / g.sum(dim=-1, keepdim=True)                                # sum over chosen = 1
        return g * c.scale, experts, probs


class MoE(nn.Module):
    """The MoE feed-forward layer: x (B, T, D) -> (B, T, D), shared experts plus K_r routed ones.

    In training mode it also keeps, for the balancing, ``load`` (E,): tokens routed to each
    expert since the last ``MoEGPT.after_step``, and ``aux_loss``: sum_i f_i P_i of the last
    forward (without alpha).
    """

    def __init__(self, cfg: MoEConfig):
        super().__init__()
        self.cfg = cfg
        self.experts = nn.ModuleList(SwiGLU(cfg.d_model, cfg.d_expert) for _ in range(cfg.n_routed))
        self.gate = Router(cfg) if cfg.n_routed else None
        self.shared_experts = SwiGLU(cfg.d_model, cfg.n_shared * cfg.d_expert) if cfg.n_shared else None
        self.register_buffer("load", torch.zeros(cfg.n_routed), persistent=False)
        self.aux_loss = None

    def route(self, x: torch.Tensor):
        """experts (B, T, K) and weights (B, T, K) that the router picks for x (B, T, D)."""
        g, experts, _ = self.gate(x.reshape(-1, x.size(-1)))
        return experts.view(*x.shape[:-1], -1), g.view(*x.shape[:-1], -1)

    def routed(self, u: torch.Tensor, g: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
        """sum_i g_{i,t} FFN_i(u_t) over the chosen experts: u (N, D), g and experts (N, K) -> (N, D)."""
        K = experts.size(1)
        order = experts.flatten().argsort()                                    # the N K (token, slot) pairs,
        sizes = torch.bincount(experts.flatten(), minlength=len(self.experts)).tolist()   # grouped by expert
        token = order // K                                                     # which token each pair is
        batches = u[token].split(sizes)                                        # expert i's tokens only
        out = torch.cat([expert(b) for expert, b in zip(self.experts, batches)])   # FFN_i(u_t), (N K, D)
        weighted = g.flatten()[order, None] * out                              # g_{i,t} FFN_i(u_t)
        return torch.zeros_like(u).index_add(0, token, weighted.to(u.dtype))   # summed per token

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x.reshape(-1, x.size(-1))                                          # (N, D) tokens
        y = self.shared_experts(u) if self.shared_experts is not None else torch.zeros_like(u)
        if self.gate is None:                                                  # dense: shared experts only
            return y.view_as(x)
        g, experts, probs = self.gate(u)                                       # (N, K), (N, K), (N, E)
        y = y + self.routed(u, g, experts)
        if self.training:
            counts = torch.bincount(experts.flatten(), minlength=self.cfg.n_routed).to(self.load.dtype)
            self.load += counts
            f = counts * self.cfg.n_routed / experts.numel()                   # f_i = N_r / (K_r N) #{t: i chosen}
            p = probs / probs.sum(-1, keepdim=True)                            # (sigmoid scores normalised, as V3)
            self.aux_loss = (f * p.mean(0)).sum()                              # sum_i f_i P_i
        return y.view_as(x)

    def load_hf_deepseek_v3(self, hf_moe) -> "MoE":
        """Copy the weights of a transformers ``DeepseekV3MoE`` (5.24 layout) into this layer."""
        sd = {k: v.detach() for k, v in hf_moe.state_dict().items()}
        gate_up, down = sd["experts.gate_up_proj"], sd["experts.down_proj"]   # (E, 2 I, D), (E, D, I)
        expected = (self.cfg.n_routed, 2 * self.cfg.d_expert, self.cfg.d_model)
        if tuple(gate_up.shape) != expected:
            raise ValueError(f"experts.gate_up_proj has shape {tuple(gate_up.shape)}, expected {expected}: "
                             "the MoE configs differ, or transformers stores experts in another layout")
        with torch.no_grad():
            for i, e in enumerate(self.experts):
                gate, up = gate_up[i].chunk(2, dim=0)                          # [W_gate; W_up], stacked
                e.gate_proj.weight.copy_(gate)
                e.up_proj.weight.copy_(up)
                e.down_proj.weight.copy_(down[i])
            self.gate.weight.copy_(sd["gate.weight"])
            self.gate.e_score_correction_bias.copy_(sd["gate.e_score_correction_bias"])
            for name in ("gate_proj", "up_proj", "down_proj"):
                getattr(self.shared_experts, name).weight.copy_(sd[f"shared_experts.{name}.weight"])
        return self


def expert_params(cfg: MoEConfig) -> int:
    """Parameters of one routed expert: 3 D d_expert."""
    return 3 * cfg.d_model * cfg.d_expert


class MoEGPT(GPT):
    """A GPT (seqlab.models.gpt) whose every MLP is an MoE layer; attention, embeddings, cache unchanged.

    ``seqlab.train.train`` adds ``extra_loss()`` to the LM loss and calls ``after_step()``
    after each optimiser step, which moves the balancing biases and appends the step's load,
    (n_layer, N_r) fractions of routed tokens, to ``load_history``.
    """

    def __init__(self, cfg: GPTConfig, moe: MoEConfig):
        if moe.d_model != cfg.d_model:
            raise ValueError(f"MoEConfig.d_model={moe.d_model} differs from GPTConfig.d_model={cfg.d_model}")
        super().__init__(cfg)
        self.moe_cfg = moe
        for block in self.blocks:
            block.mlp = MoE(moe)
            for name, p in block.mlp.named_parameters():                       # GPT-2's initialisation
                if name != "gate.weight":
                    nn.init.normal_(p, std=0.02 / (math.sqrt(2 * cfg.n_layer) if "down_proj" in name else 1))
        self.load_history: list[torch.Tensor] = []

    def moe_layers(self) -> list[MoE]:
        return [block.mlp for block in self.blocks]

    def extra_loss(self):
        """alpha * sum over layers of L_aux (balance="aux"), else None."""
        if self.moe_cfg.balance != "aux" or not self.moe_cfg.n_routed:
            return None
        return self.moe_cfg.aux_weight * sum(layer.aux_loss for layer in self.moe_layers())

    @torch.no_grad()
    def after_step(self) -> None:
        """Record each layer's load of the step; with balance="bias", b_i += gamma sign(mean c - c_i)."""
        if not self.moe_cfg.n_routed:
            return
        loads = []
        for layer in self.moe_layers():
            c = layer.load
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                torch.distributed.all_reduce(c)                                # every process routes its shard
            if self.moe_cfg.balance == "bias":
                layer.gate.e_score_correction_bias += self.moe_cfg.bias_speed * torch.sign(c.mean() - c)
            loads.append(c / c.sum().clamp(min=1))
            c.zero_()
        self.load_history.append(torch.stack(loads).cpu())

    def active_params(self, non_embedding: bool = True) -> int:
        """Parameters one token uses: all but the N_r - K_r routed experts it skips in each layer."""
        c = self.moe_cfg
        skipped = (c.n_routed - c.top_k) * expert_params(c) if c.n_routed else 0
        return self.num_params(non_embedding) - self.cfg.n_layer * skipped


def max_violation(load: torch.Tensor) -> torch.Tensor:
    """MaxVio = max_i c_i / mean_j c_j - 1 (Wang et al. 2024): 0 when balanced, N_r - 1 when one expert
    takes everything. load: (..., N_r) counts or fractions -> (...)."""
    return load.max(-1).values / load.mean(-1) - 1
