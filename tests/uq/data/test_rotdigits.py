"""Rotated digits: rendering, splits, seeds, and the stated true conditional of the angle."""

import math

import numpy as np
import pytest
import torch

from hidlr.uq.data.rotdigits import RotatedDigits, RotatedDigitsTask, render_rotated

TASK = RotatedDigitsTask()


@pytest.fixture(scope="module")
def test_sources():
    return TASK.sources("test")


def test_quarter_and_half_turns_are_exact_pixel_permutations(test_sources):
    digits = test_sources[0][:20]
    upright = render_rotated(digits, torch.zeros(20))
    quarter = render_rotated(digits, torch.full((20,), 90.0))
    half = render_rotated(digits, torch.full((20,), 180.0))
    # counter-clockwise as displayed: torch.rot90 with k=1 over (rows, columns)
    torch.testing.assert_close(quarter, torch.rot90(upright, 1, dims=(-2, -1)), atol=1e-12, rtol=0)
    torch.testing.assert_close(half, torch.flip(upright, dims=(-2, -1)), atol=1e-12, rtol=0)
    assert (quarter - torch.rot90(upright, -1, dims=(-2, -1))).abs().max() > 0.3  # the direction matters


@pytest.mark.parametrize("angle", [27.0, 73.0, -135.0])
def test_turning_back_undoes_the_turn(test_sources, angle):
    digits = test_sources[0][:40]
    a = torch.full((40,), angle)
    upright = render_rotated(digits, torch.zeros(40))
    turned = render_rotated(digits, a)
    back = render_rotated(turned, -a, side=20, digit_side=20)  # the canvas turned by -angle
    wrong = render_rotated(turned, a, side=20, digit_side=20)
    rel = (back - upright).norm(dim=(1, 2)) / upright.norm(dim=(1, 2))
    rel_wrong = (wrong - upright).norm(dim=(1, 2)) / upright.norm(dim=(1, 2))
    assert rel.max() < 0.15  # two bilinear resamplings blur a little
    assert rel_wrong.min() > 0.25


def test_the_digit_is_never_clipped(test_sources):
    digits = test_sources[0][:30]
    mass0 = render_rotated(digits, torch.zeros(30)).sum((1, 2))
    for angle in (45.0, -135.0, 150.0):
        mass = render_rotated(digits, torch.full((30,), angle)).sum((1, 2))
        torch.testing.assert_close(mass, mass0, rtol=0.05, atol=0)


def test_split_is_by_source_image_and_leaves_out_nines():
    from sklearn.datasets import load_digits

    target = load_digits().target
    _, lab_tr, rows_tr = TASK.sources("train")
    _, lab_te, rows_te = TASK.sources("test")
    assert set(rows_tr.tolist()).isdisjoint(rows_te.tolist())
    assert sorted(rows_tr.tolist() + rows_te.tolist()) == np.flatnonzero(target != 9).tolist()
    assert rows_te.shape[0] == round(0.3 * np.sum(target != 9))
    assert 9 not in lab_tr.tolist() and torch.equal(lab_te, torch.as_tensor(target[rows_te.numpy()]))


def test_the_excluded_split_holds_every_left_out_image():
    from sklearn.datasets import load_digits

    digits, labels, rows = TASK.sources("excluded")
    assert rows.tolist() == np.flatnonzero(load_digits().target == 9).tolist()
    assert digits.shape == (rows.shape[0], 8, 8) and set(labels.tolist()) == {9}
    assert len(TASK.sample("excluded", 2, seed=0)) == 2 * rows.shape[0]
    with pytest.raises(ValueError, match="no class is left out"):
        RotatedDigitsTask(exclude=()).sources("excluded")


def test_sample_shapes_ranges_and_noise():
    data = TASK.sample("train", 3, seed=5)
    m = TASK.sources("train")[2].shape[0]
    assert data.images.shape == (3 * m, 20, 20) and data.flat.shape == (3 * m, 400)
    assert data.y.shape == data.angle.shape == data.label.shape == data.source.shape == (3 * m,)
    assert data.images.dtype == torch.float64 and data.images.min() >= 0 and data.images.max() <= 1
    assert torch.equal(data.source[:3], data.source[:1].repeat(3))  # source-major rows
    assert data.angle.abs().max() <= 150.0
    assert abs(float((data.y - data.angle).std()) - 10.0) < 0.6  # 3396 draws: s.e. of the sd ~ 0.12
    assert abs(float(data.angle.mean())) < 5.0


def test_seeds_reproduce_and_differ():
    a, b = TASK.sample("test", 2, seed=3), TASK.sample("test", 2, seed=3)
    c = TASK.sample("test", 2, seed=4)
    assert torch.equal(a.images, b.images) and torch.equal(a.y, b.y)
    assert not torch.equal(a.angle, c.angle)
    train = TASK.sample("train", 1, seed=3)  # the split enters the seed: other angles than the test's
    assert not torch.equal(train.angle[:50], a.angle[:50])


def test_symmetrized_classes_look_the_same_at_the_partner_angle():
    data = TASK.sample("test", 2, seed=0)
    digits = TASK.sources("test")[0].repeat_interleave(2, 0)
    at_partner = render_rotated(digits, data.partner).clamp(0, 1)
    sym = data.symmetric
    assert sym.any() and (~sym).any()
    torch.testing.assert_close(at_partner[sym], data.images[sym], atol=1e-12, rtol=0)
    assert ((at_partner[~sym] - data.images[~sym]).abs().amax((1, 2)) > 0.1).float().mean() > 0.95
    raw = RotatedDigitsTask(symmetrize=False)
    raw_data = raw.sample("test", 2, seed=0)
    raw_partner = render_rotated(raw.sources("test")[0].repeat_interleave(2, 0), raw_data.partner).clamp(0, 1)
    assert (raw_partner[sym] - raw_data.images[sym]).abs().max() > 0.1  # handwriting: only roughly symmetric


def _hand_set(angles, labels):
    angles = torch.tensor(angles, dtype=torch.float64)
    n = angles.shape[0]
    return RotatedDigits(
        torch.zeros(n, 20, 20, dtype=torch.float64),
        angles,
        angles.clone(),
        torch.tensor(labels),
        torch.arange(n),
        150.0,
        10.0,
    )


def test_true_conditional_integrates_to_one_and_has_the_stated_modes():
    data = _hand_set([100.0, -60.0, 20.0, 100.0, -140.0], [0, 8, 1, 3, 1])
    assert data.bimodal.tolist() == [True, True, False, False, True]
    assert data.partner.tolist() == [-80.0, 120.0, -160.0, -80.0, 40.0]
    truth = data.true_distribution()
    grid = torch.linspace(-400.0, 400.0, 16001, dtype=torch.float64)
    dens = truth.log_prob(grid[:, None].expand(-1, 5)).exp()  # (grid, n)
    torch.testing.assert_close(torch.trapezoid(dens, grid, dim=0), torch.ones(5, dtype=torch.float64))
    peak = 1.0 / (10.0 * math.sqrt(2 * math.pi))

    def at(row, value):
        return float(truth[row].log_prob(torch.tensor([value], dtype=torch.float64)).exp())

    for row, (a, b) in {0: (100.0, -80.0), 1: (-60.0, 120.0), 4: (-140.0, 40.0)}.items():
        assert at(row, a) == pytest.approx(peak / 2) and at(row, b) == pytest.approx(peak / 2)
        assert at(row, (a + b) / 2) < 1e-10 * peak  # two separate modes
    for row, a in {2: 20.0, 3: 100.0}.items():
        assert at(row, a) == pytest.approx(peak)
        assert at(row, a - 180.0 if a > 0 else a + 180.0) < 1e-30


@pytest.mark.parametrize(
    "kwargs",
    [{"half_range": 90.0}, {"half_range": 180.0}, {"noise": 0.0}, {"side": 10}, {"test_fraction": 1.0}],
)
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        RotatedDigitsTask(**kwargs)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="split"):
        TASK.sample("val", 1, 0)
    with pytest.raises(ValueError, match="copies"):
        TASK.sample("train", 0, 0)
    with pytest.raises(ValueError, match="seed"):
        TASK.sample("train", 1, -1)
    with pytest.raises(ValueError, match="digits"):
        render_rotated(torch.zeros(8, 8), torch.zeros(1))
    with pytest.raises(ValueError, match="angles"):
        render_rotated(torch.zeros(2, 8, 8), torch.zeros(3))
