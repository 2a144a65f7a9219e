"""The residual CNN, character GPT, fine-tuning and long-horizon workloads: shapes, seeding, a short run."""

import math

import pytest
import torch

from hidlr.bench.lr import methods as M
from hidlr.bench.lr import wl_finetune, wl_language, wl_vision
from hidlr.bench.lr import workloads as W
from hidlr.bench.lr.runner import run_one

NEW = ["digits-resnet-bn", "char-gpt", "digits-finetune", "digits-mlp-bias-long", "noisy-quadratic-long"]


def _params(task):
    return [p.detach().clone() for p in task.model.parameters()]


@pytest.mark.parametrize("name", NEW)
def test_built_twice_with_one_seed_is_identical(name):
    wl = W.get([name])[0]
    a, b, c = wl.build(1), wl.build(1), wl.build(2)
    assert all(torch.equal(x, y) for x, y in zip(_params(a), _params(b)))
    assert not all(torch.equal(x, y) for x, y in zip(_params(a), _params(c)))
    ba, bb = a.batch(torch.Generator().manual_seed(5)), b.batch(torch.Generator().manual_seed(5))
    for x, y in zip(ba if isinstance(ba, tuple) else (ba,), bb if isinstance(bb, tuple) else (bb,)):
        assert torch.equal(x, y)
    assert math.isfinite(float(a.loss(a.model, ba).detach()))


@pytest.mark.parametrize("name", ["digits-resnet-bn", "char-gpt", "digits-finetune"])
def test_a_short_run_trains(name):
    wl = W.get([name])[0]
    rec = run_one(wl, M.get(["default"])[0], seed=0, steps=12, n_evals=2)
    assert rec["status"] == "ok", rec["reason"]
    assert rec["final_loss"] < rec["curve"]["loss"][0]  # 12 Adam steps at 1e-3 lower the loss


def test_resnet_shapes_and_groups():
    task = W.get(["digits-resnet-bn"])[0].build(0)
    x, y = task.batch(torch.Generator().manual_seed(0))
    assert x.shape == (64, 64) and y.shape == (64,)
    assert task.model(x).shape == (64, 10)
    assert [g["name"] for g in task.groups] == ["norm", "head", "conv"]
    block = wl_vision.BasicBlock(4, 8, stride=2)
    assert block(torch.randn(2, 4, 8, 8)).shape == (2, 8, 4, 4)


def test_shifted_sampler_translates_with_zero_fill():
    img = torch.arange(64, dtype=torch.float32).view(1, 64) + 1  # no zero pixel
    draw = wl_vision.shifted_sampler(img, torch.tensor([3]), batch_size=200, max_shift=1)
    x, y = draw(torch.Generator().manual_seed(0))
    assert torch.equal(y, torch.full((200,), 3))
    grid = img.view(8, 8)
    padded = torch.nn.functional.pad(grid, (1, 1, 1, 1))
    seen = set()
    for row in x.view(-1, 8, 8):
        matches = [(dy, dx) for dy in range(3) for dx in range(3) if torch.equal(row, padded[dy : dy + 8, dx : dx + 8])]
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) == 9  # every shift in [-1, 1]^2 occurs
    plain = wl_vision.shifted_sampler(img, torch.tensor([3]), batch_size=4, max_shift=0)
    assert torch.equal(plain(torch.Generator())[0], img.expand(4, 64))


def test_char_corpus_and_model():
    text = wl_language.corpus()
    assert set(text) <= set(wl_language.ALPHABET) and len(text) > 50_000
    assert "def wrap(" in text  # textwrap's source
    assert wl_language.corpus_digest() in W.get(["char-gpt"])[0].description
    train, val = wl_language.encoded()
    assert len(val) == pytest.approx(0.1 * (len(train) + len(val)), abs=1)
    x, y = wl_language.windows(train, torch.tensor([0, 10]))
    assert x.shape == y.shape == (2, wl_language.CONTEXT)
    assert torch.equal(x[:, 1:], y[:, :-1])  # targets are the inputs shifted by one
    model = wl_language.CharGPT()
    assert model(x).shape == (2, wl_language.CONTEXT, len(wl_language.ALPHABET))


def test_char_gpt_is_causal():
    torch.manual_seed(0)
    model = wl_language.CharGPT().eval()
    x = torch.randint(0, len(wl_language.ALPHABET), (1, 16))
    x2 = x.clone()
    x2[0, 10:] = (x2[0, 10:] + 1) % len(wl_language.ALPHABET)  # change the future only
    with torch.no_grad():
        assert torch.allclose(model(x)[0, :10], model(x2)[0, :10], atol=1e-6)
        assert not torch.allclose(model(x)[0, 10:], model(x2)[0, 10:])


def test_finetune_starts_from_the_pretrained_backbone():
    task = W.get(["digits-finetune"])[0].build(0)
    state = wl_finetune.pretrained(0)
    assert torch.equal(task.model.lower[0].weight, state["lower.0.weight"])
    assert torch.equal(task.model.upper[0].weight, state["upper.0.weight"])
    assert task.model.head.out_features == 5 and not torch.equal(task.model.head.weight, state["head.weight"])
    x, y = task.batch(torch.Generator().manual_seed(0))
    assert int(y.max()) <= 4 and task.model(x).shape == (32, 5)
    assert [g["name"] for g in task.groups] == ["lower", "upper", "head"]


def test_long_versions_share_the_short_workload():
    for name in ("digits-mlp-bias", "noisy-quadratic"):
        short, long = W.get([name, f"{name}-long"])
        assert long.steps >= 3000 and long.build is short.build and long.grid == short.grid


def test_registered_names_an_unknown_workload():
    with pytest.raises(ValueError, match="no workload 'nope'"):
        W.registered("nope")
