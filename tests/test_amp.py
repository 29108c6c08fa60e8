import pytest
import torch

from igkd.training.amp import MixedPrecision


def sgd_step(amp, model, x, y):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with amp.autocast():
        loss = torch.nn.functional.cross_entropy(model(x), y)
    optimizer.zero_grad()
    amp.backward_step(loss, optimizer)
    return [p.detach().clone() for p in model.parameters()]


def test_cpu_is_the_plain_float32_step():
    amp = MixedPrecision("cpu")
    assert (amp.enabled, amp.name, amp.state_dict()) == (False, "off", {})
    torch.manual_seed(0)
    x, y = torch.randn(16, 5), torch.randint(0, 3, (16,))
    torch.manual_seed(1)
    mixed = sgd_step(amp, torch.nn.Linear(5, 3), x, y)
    torch.manual_seed(1)
    model = torch.nn.Linear(5, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
    for a, b in zip(mixed, model.parameters()):
        assert torch.equal(a, b)
    with amp.autocast():
        assert torch.get_autocast_dtype("cpu") is not None and not torch.is_autocast_enabled("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_autocasts_the_forward_pass():
    amp = MixedPrecision("cuda")
    assert amp.name in ("bf16", "fp16")
    model = torch.nn.Linear(8, 4).cuda()
    with amp.autocast():
        out = model(torch.randn(2, 8, device="cuda"))
    assert out.dtype == amp.dtype
    before = model.weight.detach().clone()
    with amp.autocast():
        loss = out.float().pow(2).mean()
    amp.backward_step(loss, torch.optim.SGD(model.parameters(), lr=0.1))
    assert not torch.equal(before, model.weight)
