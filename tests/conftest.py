"""Fixtures shared by the test modules."""
import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models: intra-op threads only add overhead (and thrash on a busy 2-core box).

    Use in a module with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class _WithoutStep(torch.nn.Module):
    """The same LM without ``step``: generate() must re-run it on the whole (cropped) context."""

    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def forward(self, idx):
        return self.lm(idx)


@pytest.fixture
def without_step():
    """Wraps a language model so that generate() cannot use its state or cache: the reference."""
    return _WithoutStep


def _step_through(model, idx):
    """Feed idx (B, T) to model.step one position at a time: (logits (B, T, V), the final state)."""
    state, steps = None, []
    with torch.no_grad():
        for t in range(idx.size(1)):
            logits, state = model.step(idx[:, t], state)
            steps.append(logits)
    return torch.stack(steps, 1), state


@pytest.fixture
def step_through():
    """The recurrent (RNN) form of a model with ``step``, to compare with its whole-sequence form."""
    return _step_through
