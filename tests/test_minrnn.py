"""minGRU / minLSTM: the parallel scan equals the step-by-step recurrence (float64, 1e-6)."""
import pytest
import torch

from seqlab.models.minrnn import MinGRU, MinLSTM


@pytest.mark.parametrize("cls", [MinGRU, MinLSTM])
def test_parallel_equals_sequential_and_step(cls):
    torch.manual_seed(0)
    cell = cls(6, 10).double()
    x = torch.randn(3, 50, 6, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(3, 10, dtype=torch.float64)
    hp, hs = cell(x, h0), cell(x, h0, parallel=False)
    assert (hp - hs).abs().max() < 1e-6
    w = torch.randn_like(hp)
    gp = torch.autograd.grad((hp * w).sum(), [x, *cell.parameters()])
    gs = torch.autograd.grad((hs * w).sum(), [x, *cell.parameters()])
    assert max((a - b).abs().max().item() for a, b in zip(gp, gs)) < 1e-6
    h, steps = h0, []
    with torch.no_grad():
        for t in range(x.size(1)):
            h = cell.step(x[:, t], h)
            steps.append(h)
    assert (torch.stack(steps, 1) - hp).abs().max() < 1e-10


def test_min_gru_is_its_equation():
    torch.manual_seed(1)
    cell = MinGRU(4, 5).double()
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    h = torch.zeros(2, 5, dtype=torch.float64)
    for t in range(3):
        z = torch.sigmoid(x[:, t] @ cell.linear_z.weight.T + cell.linear_z.bias)
        h = (1 - z) * h + z * (x[:, t] @ cell.linear_h.weight.T + cell.linear_h.bias)
    assert (cell(x)[:, -1] - h).abs().max() < 1e-12


def test_min_lstm_gates_sum_to_one():
    cell = MinLSTM(4, 5).double()
    a, b = cell.coefficients(torch.randn(7, 4, dtype=torch.float64))
    assert ((a > 0) & (a < 1)).all()                     # f' in (0, 1): the state neither explodes nor flips
