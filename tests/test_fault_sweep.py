"""The fault and bad-input sweep (``benchmarks/faults/sweep.py``), all of it (about 1300 cases, some
seconds): no case may lose data, go silently wrong, refuse without naming the problem, or refuse a
valid value."""

import pytest

from tests.scripts import load_script


@pytest.fixture(scope="module")
def sweep():
    return load_script("faults", "sweep")


def test_sweep_finds_no_bad_case(sweep):
    cases = sweep.collect()
    assert {c.area for c in cases} >= {"options", "step", "checkpoint", "uq-params", "uq-data", "uq-refit", "uq-args"}
    assert len(cases) > 1000
    results = sweep.run(cases)
    bad = [f"{r.cls}: {r.area} {r.name}: {r.message}" for r in results if r.cls not in ("refused-clear", "ok")]
    assert not bad, "\n".join(bad)


def test_the_classifier_catches_what_it_is_meant_to(sweep):
    """The sweep's own checks can fail: a wrong value accepted, a refusal that does not name the
    argument, and a refusal that changed state are each classified as such."""
    from harness import Outcome, expect_refusal, names, refused

    assert expect_refusal(lambda: None, ["every"]).cls == "silently-wrong"
    assert refused(ValueError("must be positive"), ["every"]).cls == "refused-unclear"
    assert refused(KeyError("every"), ["every"]).cls == "refused-unclear"
    assert refused(ValueError("every must be positive"), ["every"]).cls == "refused-clear"
    assert not names("max_every must be positive", ["every"])

    def fail():
        raise ValueError("every must be positive")

    assert expect_refusal(fail, ["every"], unchanged=lambda: "weights changed").cls == "loses-data"
    assert isinstance(sweep.report([], "cmd", "abc", 0.0), str) and Outcome("ok").cls == "ok"
