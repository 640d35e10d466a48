"""seqlab's DeepSeek-style MoE against transformers' DeepseekV3MoE and Mixtral, with copied weights.

transformers 5.24 (pinned in requirements-dev.txt) stores the routed experts as two stacked
tensors, ``experts.gate_up_proj`` (E, 2 I, D) and ``experts.down_proj`` (E, D, I), and its
routers compute their scores in float32 even in a float64 model. So the whole layers agree to
float32's precision of the routing weights (about 1e-7 here), while the experts, given the
same routing, agree to float64's; the tolerance 1e-6 still fails on any real difference
(a bias that is not copied changes the chosen experts and the output by about 1e-1).
"""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch

import transformers
from seqlab.models.gpt import GPTConfig
from seqlab.models.moe import MoE, MoEConfig, MoEGPT, expert_params, max_violation

D, I, E = 32, 16, 8


def _deepseek_pair():
    from transformers import DeepseekV3Config
    from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3MoE

    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    hc = DeepseekV3Config(hidden_size=D, moe_intermediate_size=I, n_routed_experts=E, num_experts_per_tok=3,
                          n_group=4, topk_group=2, n_shared_experts=2, routed_scaling_factor=2.5,
                          norm_topk_prob=True, hidden_act="silu", vocab_size=64, num_hidden_layers=1,
                          num_attention_heads=2, intermediate_size=64)
    hf = DeepseekV3MoE(hc).double()
    with torch.no_grad():
        for p in hf.parameters():
            p.normal_(0, 0.1)
        hf.gate.weight.normal_(0, 0.5)                          # affinities spread over (0, 1)
        hf.gate.e_score_correction_bias.uniform_(-0.3, 0.3)      # a bias that changes the choices
    ours = MoE(MoEConfig(d_model=D, d_expert=I, n_routed=E, top_k=3, n_group=4, topk_group=2, n_shared=2,
                         scale=2.5)).double().load_hf_deepseek_v3(hf)
    return hf, ours


def test_layout_of_the_pinned_transformers():
    hf, _ = _deepseek_pair()
    shapes = {k: tuple(v.shape) for k, v in hf.state_dict().items()}
    assert shapes["experts.gate_up_proj"] == (E, 2 * I, D)
    assert shapes["experts.down_proj"] == (E, D, I)
    assert shapes["gate.weight"] == (E, D) and shapes["gate.e_score_correction_bias"] == (E,)
    assert shapes["shared_experts.gate_proj.weight"] == (2 * I, D)


def test_router_chooses_the_same_experts_as_deepseek_v3():
    hf, ours = _deepseek_pair()
    u = torch.randn(200, D, dtype=torch.float64)
    _, w_hf, i_hf = hf.gate(u)
    g, experts, _ = ours.gate(u)
    order_hf, order = i_hf.sort(-1), experts.sort(-1)
    assert torch.equal(order_hf.values, order.values)                                  # the same sets
    gap = (w_hf.gather(1, order_hf.indices) - g.gather(1, order.indices)).abs().max().item()
    assert gap < 1e-6, gap
    with torch.no_grad():                                        # the bias matters: without it, other choices
        ours.gate.e_score_correction_bias.zero_()
    assert not torch.equal(ours.gate(u)[1].sort(-1).values, order.values)


def test_layer_equals_deepseek_v3_forward_and_backward_float64():
    hf, ours = _deepseek_pair()
    x = torch.randn(3, 17, D, dtype=torch.float64, requires_grad=True)
    y_hf, y = hf(x), ours(x)
    assert y.abs().max() > 0.1                                   # a test that can see a difference
    assert (y - y_hf).abs().max().item() < 1e-6
    w = torch.randn_like(y)
    (y_hf * w).sum().backward()
    grads_hf = {k: p.grad for k, p in hf.named_parameters()}
    gx_hf, x.grad = x.grad, None
    (y * w).sum().backward()
    assert (x.grad - gx_hf).abs().max().item() < 1e-6
    gate_up = torch.stack([torch.cat([e.gate_proj.weight.grad, e.up_proj.weight.grad]) for e in ours.experts])
    down = torch.stack([e.down_proj.weight.grad for e in ours.experts])
    pairs = [(gate_up, grads_hf["experts.gate_up_proj"]), (down, grads_hf["experts.down_proj"]),
             (ours.gate.weight.grad, grads_hf["gate.weight"])]
    pairs += [(getattr(ours.shared_experts, n).weight.grad, grads_hf[f"shared_experts.{n}.weight"])
              for n in ("gate_proj", "up_proj", "down_proj")]
    worst = max((a - b).abs().max().item() for a, b in pairs)
    assert worst < 1e-6, worst


def test_experts_given_the_same_routing_agree_to_float64():
    hf, ours = _deepseek_pair()
    u = torch.randn(64, D, dtype=torch.float64)
    _, w, idx = hf.gate(u)
    w = w.double()
    gap = (hf.experts(u, idx, w) - ours.routed(u, w, idx)).abs().max().item()
    assert gap < 1e-12, gap


def _mixtral_pair():
    from transformers import MixtralConfig
    from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock

    transformers.logging.set_verbosity_error()
    torch.manual_seed(1)
    hf = MixtralSparseMoeBlock(MixtralConfig(hidden_size=D, intermediate_size=I, num_local_experts=E,
                                             num_experts_per_tok=2, hidden_act="silu")).double().eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.normal_(0, 0.1)
    ours = MoE(MoEConfig(d_model=D, d_expert=I, n_routed=E, top_k=2, n_shared=0, router="softmax",
                         balance="aux")).double()
    with torch.no_grad():
        sd = hf.state_dict()
        for i, e in enumerate(ours.experts):
            gate, up = sd["experts.gate_up_proj"][i].chunk(2, dim=0)
            e.gate_proj.weight.copy_(gate)
            e.up_proj.weight.copy_(up)
            e.down_proj.weight.copy_(sd["experts.down_proj"][i])
        ours.gate.weight.copy_(sd["gate.weight"])
    return hf, ours


def test_softmax_router_equals_mixtral():
    hf, ours = _mixtral_pair()
    x = torch.randn(2, 19, D, dtype=torch.float64)
    gap = (hf(x) - ours(x)).abs().max().item()
    assert gap < 1e-6, gap


def test_aux_loss_equals_switch_loss_of_transformers():
    from transformers.models.mixtral.modeling_mixtral import load_balancing_loss_func

    hf, ours = _mixtral_pair()
    x = torch.randn(4, 25, D, dtype=torch.float64)
    ours.train()
    ours(x)
    logits = x.reshape(-1, D) @ ours.gate.weight.T
    theirs = load_balancing_loss_func((logits,), num_experts=E, top_k=2)
    # transformers' f_i is the fraction of tokens that chose i (sums to K); DeepSeek's is N_r/K times that
    assert abs(ours.aux_loss.item() * 2 - theirs.item()) < 1e-6
    assert 0.5 < ours.aux_loss.item() < 2                         # 1 when balanced


def _skewed_moe(balance):
    torch.manual_seed(0)
    moe = MoE(MoEConfig(d_model=D, d_expert=I, n_routed=E, top_k=2, balance=balance))
    with torch.no_grad():
        moe.gate.weight[0] += 0.5                                # expert 0 attracts every token with u . 1 > 0
    return moe


def test_bias_balancing_evens_the_load_without_gradients():
    gpt = MoEGPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, d_model=D, bias=False),
                 MoEConfig(d_model=D, d_expert=I, n_routed=E, top_k=2, bias_speed=0.003))
    layer = gpt.moe_layers()[0]
    layer.gate.weight.data = _skewed_moe("bias").gate.weight.data
    u = torch.randn(512, 1, D) + 1.0
    layer.train()
    layer(u)
    c = layer.load.clone()
    gpt.after_step()
    before = max_violation(gpt.load_history[0][0]).item()
    b = layer.gate.e_score_correction_bias
    assert b[c.argmax()] < 0 and b[c.argmin()] > 0                # overloaded down, underloaded up
    for _ in range(300):
        layer(u)
        gpt.after_step()
    after = max_violation(gpt.load_history[-1][0]).item()
    assert before > 1.0 and after < 0.3, (before, after)
    assert not b.requires_grad and "e_score_correction_bias" not in dict(gpt.named_parameters())


def test_no_balancing_leaves_the_bias_at_zero():
    gpt = MoEGPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, d_model=D),
                 MoEConfig(d_model=D, d_expert=I, n_routed=E, balance="none"))
    gpt.train()
    gpt(torch.randint(0, 11, (4, 8)))
    gpt.after_step()
    assert gpt.moe_layers()[0].gate.e_score_correction_bias.abs().max() == 0
    assert gpt.extra_loss() is None
    assert len(gpt.load_history) == 1 and abs(gpt.load_history[0].sum().item() - 1.0) < 1e-6


def test_active_parameters_are_those_one_token_touches():
    cfg = MoEConfig(d_model=D, d_expert=I, n_routed=E, n_shared=1, top_k=2)
    gpt = MoEGPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, d_model=D, bias=False), cfg)
    gpt(torch.tensor([[3]])).sum().backward()
    touched = sum(p.numel() for n, p in gpt.named_parameters()       # (the position table is left out
                  if p.grad is not None and p.grad.abs().sum() > 0 and n != "wpe.weight")   # of both counts)
    assert touched == gpt.active_params(), (touched, gpt.active_params())
    assert gpt.num_params() - gpt.active_params() == 2 * (E - 2) * expert_params(cfg)


def test_dense_config_is_a_swiglu_of_the_shared_width():
    torch.manual_seed(0)
    moe = MoE(MoEConfig(d_model=D, d_expert=I, n_routed=0, n_shared=3))
    x = torch.randn(2, 5, D)
    s = moe.shared_experts
    want = s.down_proj(torch.nn.functional.silu(s.gate_proj(x)) * s.up_proj(x))
    assert torch.allclose(moe(x), want) and s.up_proj.weight.shape == (3 * I, D)


def test_moe_gpt_trains_with_the_shared_loop_and_caches():
    from seqlab.train import TrainConfig, train

    torch.manual_seed(0)
    gpt = MoEGPT(GPTConfig(vocab_size=5, block_size=8, n_layer=2, n_head=2, d_model=D),
                 MoEConfig(d_model=D, d_expert=I, n_routed=E, top_k=2, balance="aux"))

    def batch(split):                                            # repeat the previous token: learnable
        x = torch.randint(0, 5, (16, 8))
        return x, x
    res = train(gpt, batch, TrainConfig(max_steps=60, lr=3e-3, warmup_steps=5, eval_every=0, eval_batches=2,
                                        progress=False))
    assert res.final_val_loss < 0.5 * res.history["train_loss"][0]
    assert len(gpt.load_history) == 60 and gpt.load_history[-1].shape == (2, E)
    gpt.eval()
    idx = torch.randint(0, 5, (2, 6))
    with torch.no_grad():
        full = gpt(idx)
        _, cache = gpt(idx[:, :3], return_state=True)
        steps = []
        for t in range(3, 6):
            logits, cache = gpt.step(idx[:, t], cache)
            steps.append(logits)
    cached = torch.stack(steps, dim=1)
    assert (cached - full[:, 3:]).abs().max() < 1e-5


def test_mixed_precision_routes_in_float32():
    torch.manual_seed(0)
    moe = MoE(MoEConfig(d_model=D, d_expert=I, n_routed=E, top_k=2)).train()
    x = torch.randn(4, 9, D, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = moe(x)
        experts, _ = moe.route(x)
    y.float().sum().backward()                                    # runs, and reaches the router
    assert moe.gate.weight.grad is not None and torch.isfinite(x.grad).all()
    assert torch.equal(experts, moe.route(x)[0])                  # the choices of full precision


@pytest.mark.parametrize("bad", [dict(router="relu"), dict(balance="loss"), dict(n_routed=0, n_shared=0),
                                 dict(n_routed=6, n_group=4), dict(top_k=9), dict(n_group=4, topk_group=1, top_k=3)])
def test_bad_configs_are_refused(bad):
    with pytest.raises(ValueError):
        MoEConfig(**{**dict(d_model=D, d_expert=I, n_routed=E), **bad})
