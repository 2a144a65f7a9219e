import pytest
import torch
from torch import nn

from hidlr import HiDLR, groups


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 8), nn.LayerNorm(8))
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.body(x))


def _names(model, grps):
    ids = {id(p): n for n, p in model.named_parameters()}
    return {g["name"]: sorted(ids[id(p)] for p in g["params"]) for g in grps}


def test_single_and_by_layer():
    m = Net()
    assert _names(m, groups.single(m)) == {"all": sorted(n for n, _ in m.named_parameters())}
    assert _names(m, groups.by_layer(m)) == {
        "body.0": ["body.0.bias", "body.0.weight"],
        "body.1": ["body.1.bias", "body.1.weight"],
        "body.3": ["body.3.bias", "body.3.weight"],
        "body.4": ["body.4.bias", "body.4.weight"],
        "head": ["head.bias", "head.weight"],
    }
    assert set(_names(m, groups.by_layer(m, depth=1))) == {"body", "head"}


def test_by_parameter_is_one_group_per_trainable_tensor():
    m = Net()
    m.body[1].weight.requires_grad_(False)
    named = _names(m, groups.by_parameter(m))
    assert named == {n: [n] for n, p in m.named_parameters() if p.requires_grad}
    assert "body.1.weight" not in named and "body.1.bias" in named


def test_by_kind_puts_norm_layers_apart_from_biases():
    m = Net()
    named = _names(m, groups.by_kind(m))
    assert named["norm"] == ["body.1.bias", "body.1.weight", "body.4.bias", "body.4.weight"]
    assert named["bias"] == ["body.0.bias", "body.3.bias", "head.bias"]
    assert named["weight"] == ["body.0.weight", "body.3.weight", "head.weight"]


def test_head_body_by_name_or_module():
    m = Net()
    by_name, by_mod = groups.head_body(m, "head"), groups.head_body(m, m.head)
    assert _names(m, by_name) == _names(m, by_mod)
    assert _names(m, by_name)["head"] == ["head.bias", "head.weight"]
    with pytest.raises(ValueError, match="no submodule named 'neck'"):
        groups.head_body(m, "neck")


def test_patterns_and_lora():
    m = nn.ModuleDict(
        {
            "base": nn.Linear(4, 4),
            "lora_A": nn.Linear(4, 2, bias=False),
            "lora_B": nn.Linear(2, 4, bias=False),
            "head": nn.Linear(4, 1),
        }
    )
    m["base"].requires_grad_(False)
    named = _names(m, groups.lora(m))
    assert named == {"lora_A": ["lora_A.weight"], "lora_B": ["lora_B.weight"], "rest": ["head.bias", "head.weight"]}
    with pytest.raises(ValueError, match="matching no pattern: head.weight, head.bias"):
        groups.by_pattern(m, {"a": "lora_A", "b": "lora_B"}, rest=None)
    with pytest.raises(ValueError, match="matched no parameter for group"):
        groups.by_pattern(m, {"a": "lora_A", "x": "nothing_like_this"})
    with pytest.raises(ValueError, match=r"pattern 'head\(' of group 'x' is not a regular expression"):
        groups.by_pattern(m, {"a": "lora_A", "x": ["head", "head("]})


def test_partition_errors_name_the_parameter():
    m = Net()
    g = groups.by_layer(m)
    with pytest.raises(ValueError, match="'head.weight' is in two groups"):
        groups.check_partition(m, g + [{"name": "dup", "params": [m.head.weight]}])
    with pytest.raises(ValueError, match="in no group: head.weight, head.bias"):
        groups.check_partition(m, g[:-1])
    with pytest.raises(ValueError, match="not a parameter of the model"):
        groups.check_partition(m, g + [{"name": "x", "params": [nn.Parameter(torch.zeros(2))]}])


def test_groups_feed_an_optimizer_and_hidlr_reports_their_names():
    torch.manual_seed(0)
    m = Net()
    opt = HiDLR(torch.optim.Adam(groups.by_kind(m), lr=1e-3), every=1)
    x, y = torch.randn(16, 4), torch.randint(3, (16,))
    loss_fn = nn.CrossEntropyLoss()
    loss_fn(m(x), y).backward()
    m.eval()  # probes must be deterministic: BatchNorm in eval mode
    opt.step(probe=lambda: loss_fn(m(x), y))
    assert [g["name"] for g in opt.history[0]["groups"]] == ["weight", "bias", "norm"]


def test_lora_recognises_peft_layers_by_type():
    peft = pytest.importorskip("peft")
    torch.manual_seed(0)
    m = nn.ModuleDict({"body": nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 4)), "head": nn.Linear(4, 1)})
    peft.inject_adapter_in_model(peft.LoraConfig(r=2, target_modules=["body.0", "body.2"]), m)
    for p in m["head"].parameters():
        p.requires_grad_(True)
    named = _names(m, groups.lora(m, rest="head"))
    assert named == {
        "lora_A": ["body.0.lora_A.default.weight", "body.2.lora_A.default.weight"],
        "lora_B": ["body.0.lora_B.default.weight", "body.2.lora_B.default.weight"],
        "head": ["head.bias", "head.weight"],
    }
    with pytest.raises(ValueError, match="outside the LoRA layers"):
        groups.lora(m, rest=None)


def test_depth_must_be_a_positive_int_or_none():
    m = Net()
    for bad in (-1, 0):
        with pytest.raises(ValueError, match="depth must be a positive int or None, got"):
            groups.by_layer(m, depth=bad)
    for bad in (True, 1.5, "1"):
        with pytest.raises(TypeError, match="depth must be a positive int or None"):
            groups.by_layer(m, depth=bad)
    assert set(_names(m, groups.by_layer(m, depth=2))) == {"body.0", "body.1", "body.3", "body.4", "head"}


def test_head_must_be_a_submodule_of_the_model():
    m = Net()
    with pytest.raises(ValueError, match="the head Linear is not a submodule of the model"):
        groups.head_body(m, nn.Linear(8, 3))
    with pytest.raises(ValueError, match="not a submodule"):
        groups.head_body(m, [m.head, Net().head])
    with pytest.raises(TypeError, match="head must be a submodule's name or module"):
        groups.head_body(m, 5)
    with pytest.raises(TypeError, match="head must be submodule names or modules, got int"):
        groups.head_body(m, ["head", 5])


def test_patterns_are_checked_and_never_clash_with_rest():
    m = Net()
    with pytest.raises(ValueError, match="group 'rest' is both in patterns and rest="):
        groups.by_pattern(m, {"rest": "weight"})
    with pytest.raises(ValueError, match="group 'a' is both in patterns and rest="):
        groups.by_pattern(m, {"a": "weight"}, rest="a")
    assert set(_names(m, groups.by_pattern(m, {"rest": "weight", "b": "bias"}, rest=None))) == {"rest", "b"}
    for bad in ({"a": 5}, {"a": None}, {"a": ["weight", 5]}):
        with pytest.raises(TypeError, match=r"patterns\['a'\] must be a regular expression"):
            groups.by_pattern(m, bad)
    with pytest.raises(TypeError, match="patterns must map group names to regular expressions, got str"):
        groups.by_pattern(m, "weight")


def test_a_group_without_params_and_a_frozen_model_are_refused():
    m = Net()
    with pytest.raises(ValueError, match=r"groups\[0\] must be a dict with 'params'"):
        groups.check_partition(m, [{"name": "x"}])
    m.requires_grad_(False)
    for build in (groups.single, groups.by_layer, groups.by_kind, groups.by_parameter):
        with pytest.raises(ValueError, match="the model has no trainable parameters"):
            build(m)


class HeadFirst(nn.Module):
    """Registers its head before the trunk it runs after, and a module the forward pass never calls."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(8, 1)
        self.unused = nn.Linear(3, 3)
        self.trunk = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 8))

    def forward(self, x):
        return self.head(self.trunk(x))


def test_in_forward_order_sorts_groups_by_the_forward_pass_and_changes_nothing_else():
    torch.manual_seed(0)
    m = HeadFirst()
    m.trunk[1].eval()  # modes are restored module by module
    x = torch.randn(16, 4)
    built = groups.by_layer(m)
    assert [g["name"] for g in built] == ["head", "unused", "trunk.0", "trunk.1", "trunk.3"]
    before = {k: v.clone() for k, v in m.state_dict().items()}
    ordered = groups.in_forward_order(built, m, x)
    assert [g["name"] for g in ordered] == ["trunk.0", "trunk.1", "trunk.3", "head", "unused"]
    assert all(g is not o and g["params"] is o["params"] for g in ordered for o in built if o["name"] == g["name"])
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())  # no BatchNorm statistics moved
    assert m.training and not m.trunk[1].training and m.trunk[2].training
    assert not m.trunk[1]._forward_pre_hooks and not m.head._forward_pre_hooks
    # a plan kept to the last half of the ordered groups trains the head end and stops the backward there
    from hidlr.influence import plan_from_scores

    names = [g["name"] for g in ordered]
    plan = plan_from_scores(names, [1.0] * 5, [1] * 5, budget=1.0, max_reach=0.4)
    assert plan.kept_groups == ("head", "unused") and plan.reach == 0.4
    with pytest.raises(ValueError, match="not a parameter of the model"):
        groups.in_forward_order([{"name": "x", "params": [nn.Parameter(torch.ones(2))]}], m, x)
