"""Config system: _base_ inheritance, overrides, strict keys and types."""
import math
import re
from pathlib import Path

import pytest
from processor.config import (TYPES_KEY, ConfigError, apply_overrides, flatten, load_with_bases, parse_override,
                              parse_type, resolve_config)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def defaults(tmp_path):
    return write(tmp_path / "defaults.yaml", """
name: null
seed: 1
optim: {lr: 0.01, momentum: 0.9, milestones: [350]}
data: {stream: joint, window: 64, extra: {}}
""")


def test_base_chain_merges_in_order(tmp_path, defaults):
    write(tmp_path / "cfg/base.yaml", "seed: 2\noptim: {lr: 0.1}\ndata: {stream: bone}\n")
    write(tmp_path / "cfg/mid.yaml", "_base_: base.yaml\noptim: {momentum: 0.5}\n")
    leaf = write(tmp_path / "cfg/sub/leaf.yaml", "_base_: [../mid.yaml]\ndata: {window: 32}\n")
    cfg = resolve_config(defaults, leaf)
    assert cfg["seed"] == 2
    assert cfg["optim"] == {"lr": 0.1, "momentum": 0.5, "milestones": [350]}
    assert cfg["data"] == {"stream": "bone", "window": 32, "extra": {}}


def test_list_of_bases_later_wins(tmp_path, defaults):
    write(tmp_path / "a.yaml", "seed: 3\n")
    write(tmp_path / "b.yaml", "seed: 4\n")
    leaf = write(tmp_path / "leaf.yaml", "_base_: [a.yaml, b.yaml]\n")
    assert resolve_config(defaults, leaf)["seed"] == 4


def test_overrides_are_yaml_and_win(tmp_path, defaults):
    leaf = write(tmp_path / "leaf.yaml", "seed: 3\n")
    cfg = resolve_config(defaults, leaf, ["seed=7", "optim.lr=1e-3", "optim.milestones=[10, 20]",
                                          "data.stream=motion", "data.extra.anything=true"])
    assert cfg["seed"] == 7 and cfg["optim"]["lr"] == pytest.approx(1e-3)
    assert cfg["optim"]["milestones"] == [10, 20]
    assert cfg["data"]["stream"] == "motion" and cfg["data"]["extra"] == {"anything": True}


def test_override_value_is_never_evaluated():
    keys, value = parse_override("name=__import__('os').getcwd()")
    assert keys == ["name"] and value == "__import__('os').getcwd()"


def test_unknown_key_names_key_file_and_nearest(tmp_path, defaults):
    leaf = write(tmp_path / "typo.yaml", "optim:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError) as err:
        resolve_config(defaults, leaf)
    message = str(err.value)
    assert "'optim.lrr'" in message and "typo.yaml" in message and "'optim.lr'" in message


def test_unknown_key_from_base_names_the_base(tmp_path, defaults):
    write(tmp_path / "base.yaml", "sede: 3\n")
    leaf = write(tmp_path / "leaf.yaml", "_base_: base.yaml\n")
    with pytest.raises(ConfigError, match=r"'sede'.*base\.yaml.*'seed'"):
        resolve_config(defaults, leaf)


def test_unknown_override_says_command_line(tmp_path, defaults):
    with pytest.raises(ConfigError, match="command line"):
        resolve_config(defaults, None, ["optim.momentun=0.1"])


def test_wrong_kind_is_an_error(tmp_path, defaults):
    with pytest.raises(ConfigError, match="must be a number"):
        resolve_config(defaults, None, ["optim.lr=fast"])
    with pytest.raises(ConfigError, match="must be a mapping"):
        resolve_config(defaults, None, ["data=3"])


def test_base_cycle_and_missing_base(tmp_path, defaults):
    write(tmp_path / "a.yaml", "_base_: b.yaml\n")
    write(tmp_path / "b.yaml", "_base_: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_with_bases(tmp_path / "a.yaml")
    write(tmp_path / "c.yaml", "_base_: nope.yaml\n")
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_with_bases(tmp_path / "c.yaml")


def test_invalid_yaml_names_file_and_line(tmp_path, defaults):
    bad = write(tmp_path / "bad.yaml", "seed: 1\noptim: {lr: [\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:\d+"):
        resolve_config(defaults, bad)


def test_flatten_and_apply():
    cfg = apply_overrides({"a": {"b": 1}}, ["a.c=2", "d=x"])
    assert flatten(cfg) == {"a.b": 1, "a.c": 2, "d": "x"}


@pytest.mark.parametrize("typo,expected", [
    ("optim.learning_rate=0.1", "optim.lr"),
    ("optim.momentun=0.1", "optim.momentum"),
    ("lr=0.1", "optim.lr"),
    ("data.windw=32", "data.window"),
])
def test_nearest_key_suggestions(defaults, typo, expected):
    with pytest.raises(ConfigError, match=f"did you mean '{expected}'"):
        resolve_config(defaults, None, [typo])


def test_key_given_twice_is_an_error(tmp_path, defaults):
    leaf = write(tmp_path / "twice.yaml", "seed: 3\noptim:\n  lr: 0.1\n  lr: 0.2\n")
    with pytest.raises(ConfigError, match=r"twice\.yaml:4: .*'lr' given twice \(first on line 3\)"):
        resolve_config(defaults, leaf)


def test_emptied_mapping_is_an_error_not_a_wipe(tmp_path, defaults):
    # every line under "optim:" commented out: YAML reads null, which would replace all its defaults
    leaf = write(tmp_path / "empty.yaml", "optim:\n  # lr: 0.1\nseed: 2\n")
    with pytest.raises(ConfigError, match=r"'optim' \(set in .*empty\.yaml\) is empty: a mapping of "
                                          r"lr, milestones, momentum"):
        resolve_config(defaults, leaf)
    # a number left empty on the command line ("optim.lr=") names its key instead of failing later
    with pytest.raises(ConfigError, match=r"'optim.lr' \(set in command line\) is empty \(null\); it takes a "
                                          r"number like the default 0.01"):
        resolve_config(defaults, None, ["optim.lr="])
    # a null where the default is null (or an open mapping) stays allowed
    assert resolve_config(defaults, write(tmp_path / "ok.yaml", "name: null\ndata: {extra: null}\n"))["seed"] == 1


def test_every_shipped_config_resolves():
    """Each YAML under config/ (bases and defaults aside) resolves strictly for some processor."""
    root = Path(__file__).resolve().parents[1] / "config"
    defaults = sorted((root / "defaults").glob("*.yaml"))
    configs = [p for p in sorted(root.rglob("*.yaml")) if not {"_base_", "defaults"} & set(p.parts)]
    assert len(configs) > 50
    unresolved = []
    for path in configs:
        errors = []
        for default in defaults:
            try:
                resolve_config(default, path)
                break
            except ConfigError as err:
                errors.append(str(err))
        else:
            unresolved.append(f"{path.relative_to(root)}: {errors[0]}")
    assert not unresolved, "\n".join(unresolved)


TYPED = """
_types_: {name: string, root: string, text: string or null, milestones: list of integer, warmup: number}
name: null
root: null
text: clip
any: null
seed: 1
lr: 0.01
warmup: 0
milestones: []
stems: [64, 256]
order: [rotate, flip]
"""


@pytest.fixture
def typed(tmp_path):
    return write(tmp_path / "typed.yaml", TYPED)


@pytest.mark.parametrize("override, shown", [("name=off", "False"), ("name=2024", "2024"), ("name=1e-3", "0.001"),
                                             ("root=2024", "2024"), ("root={x: 1}", "{'x': 1}")])
def test_null_default_keys_take_their_declared_type(typed, override, shown):
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=rf"'{key}' \(set in command line\) must be a string \(declared in the "
                                          rf"defaults' _types_\), got {re.escape(shown)}"):
        resolve_config(typed, None, [override])
    cfg = resolve_config(typed, None, ["name='off'", "root=/data", "any=3"])
    assert (cfg["name"], cfg["root"], cfg["any"]) == ("off", "/data", 3)     # quoted text; undeclared null: any value
    assert resolve_config(typed, None, ["name=null", "root=null"])["name"] is None


def test_integer_keys_refuse_fractions_and_bools_number_keys_take_integers(typed):
    with pytest.raises(ConfigError, match=r"'seed' .* must be an integer like the default 1, got 1.9 \(a number\)"):
        resolve_config(typed, None, ["seed=1.9"])
    with pytest.raises(ConfigError, match=r"'seed' .* must be an integer like the default 1, got True \(a bool\)"):
        resolve_config(typed, None, ["seed=true"])
    with pytest.raises(ConfigError, match=r"'lr' .* must be a number like the default 0.01, got False"):
        resolve_config(typed, None, ["lr=false"])
    cfg = resolve_config(typed, None, ["lr=1", "warmup=0.5"])          # warmup: an integer default declared number
    assert cfg["lr"] == 1 and cfg["warmup"] == 0.5


def test_list_items_take_the_default_items_or_the_declared_type(typed):
    with pytest.raises(ConfigError, match=r"'milestones' .* must be a list of integer items \(item 0 is 'a', a "
                                          r"string\) like the default \[\], got \['a'\]"):
        resolve_config(typed, None, ["milestones=[a]"])
    with pytest.raises(ConfigError, match=r"'stems' .* list of integer items \(item 1 is 2.5, a number\)"):
        resolve_config(typed, None, ["stems=[4, 2.5]"])
    with pytest.raises(ConfigError, match=r"'order' .* list of string items \(item 0 is 3, an integer\)"):
        resolve_config(typed, None, ["order=[3]"])
    assert resolve_config(typed, None, ["milestones=[5, 10]", "stems=[]"])["milestones"] == [5, 10]


@pytest.mark.parametrize("key", ["milestones", "order", "lr", "seed"])
def test_null_is_refused_where_the_default_is_not_null(typed, key):
    with pytest.raises(ConfigError, match=rf"'{key}' \(set in command line\) is empty \(null\); it takes a"):
        resolve_config(typed, None, [f"{key}=null"])


def test_or_null_lets_a_key_with_a_default_take_null(typed):
    assert resolve_config(typed, None, ["text=null"])["text"] is None
    with pytest.raises(ConfigError, match=r"'text' .* must be a string like the default 'clip', got 3"):
        resolve_config(typed, None, ["text=3"])


@pytest.mark.parametrize("types, match", [
    ("{nme: string}", r"_types_ names 'nme', which is not a key of the defaults"),
    ("{name: text}", r"_types_\.name: unknown type 'text'; expected one of bool, integer"),
    ("{seed: string}", r"_types_ says 'seed' is a string but its default 1 is not"),
    ("{name: positive string}", r"_types_\.name: unknown type 'positive string'"),
    ("{seed: list of positive bool}", r"_types_\.seed: unknown type 'list of positive bool'"),
    ("{seed: positive integer}", None),
    ("{neg: positive integer}", r"_types_ says 'neg' is a positive integer but its default -1 is not"),
    ("{sub: string}", r"_types_ names 'sub', a mapping"),
    ("[name]", r"_types_ must be a mapping"),
    ("{seed: non-negative string}", r"_types_\.seed: unknown type 'non-negative string'"),
    ("{seed: 'string in [0, 1]'}", r"_types_\.seed: unknown type 'string in \[0, 1\]'"),
    ("{seed: 'number in [2, 1]'}", r"_types_\.seed: unknown type 'number in \[2, 1\]'"),
    ("{seed: 'number in (1, 1]'}", r"_types_\.seed: unknown type 'number in \(1, 1\]'"),
    ("{seed: 'number in [a, 1]'}", r"_types_\.seed: unknown type"),
    ("{seed: 'positive number in [0, 1]'}", r"_types_\.seed: unknown type"),
    ("{seed: 'integer in [2, 5]'}", r"_types_ says 'seed' is an integer in \[2, 5\] but its default 1 is not"),
    ("{neg: non-negative integer}", r"_types_ says 'neg' is a non-negative integer but its default -1 is not"),
])
def test_a_wrong_types_declaration_names_the_defaults_file(tmp_path, types, match):
    defaults = write(tmp_path / "bad_types.yaml", f"_types_: {types}\nname: null\nseed: 1\nneg: -1\nsub: {{a: 1}}\n")
    if match is None:                                 # a good declaration, for contrast
        assert resolve_config(defaults, None)["seed"] == 1
        with pytest.raises(ConfigError, match=r"'seed' .* must be a positive integer like the default 1, got 0$"):
            resolve_config(defaults, None, ["seed=0"])
        return
    with pytest.raises(ConfigError, match=rf"bad_types\.yaml: {match}"):
        resolve_config(defaults, None)


def test_every_null_default_of_the_shipped_defaults_has_a_declared_type():
    root = Path(__file__).resolve().parents[1] / "config" / "defaults"
    untyped = []
    for path in sorted(root.glob("*.yaml")):
        defaults = load_with_bases(path)
        types = defaults.pop(TYPES_KEY, {})
        untyped += [f"{path.name}: {key}" for key, value in flatten(defaults).items()
                    if value is None and key not in types]
    assert not untyped, "null defaults without a type in _types_: " + ", ".join(untyped)


def test_every_number_of_the_shipped_defaults_has_a_declared_range():
    """A number's kind alone takes any sign: a negative loss weight, dropout, seed or worker count passed and was
    met (or not) only after the data; each numeric default declares where its values lie."""
    root = Path(__file__).resolve().parents[1] / "config" / "defaults"
    unbounded = []
    for path in sorted(root.glob("*.yaml")):
        defaults = load_with_bases(path)
        types = defaults.pop(TYPES_KEY, {})
        for key, value in flatten(defaults).items():
            values = value if isinstance(value, list) else [value]
            numeric = values and all(type(v) in (int, float) for v in values)
            if numeric and (key not in types or parse_type(types[key]).bounds is None):
                unbounded.append(f"{path.name}: {key}")
    assert not unbounded, "numbers without a declared range in _types_: " + ", ".join(unbounded)


@pytest.mark.parametrize("text, good, bad", [
    ("non-negative integer", [0, 3], [-1, 1.5, True]),
    ("non-negative number", [0, 0.0, 2.5, 7], [-0.1, math.inf, math.nan, "1"]),
    ("number in [0, 1]", [0, 0.0, 0.5, 1, 1.0], [-0.01, 1.01, math.nan, math.inf, False]),
    ("number in (0, 1]", [1e-9, 1.0], [0, 0.0, 1.5]),
    ("number in (0, 1)", [0.5], [0.0, 1.0]),
    ("number in [0, 1)", [0.0, 0.99], [1.0, -1e-9]),
    ("integer in [1, 25]", [1, 25], [0, 26, 2.0]),
    ("number in [0, inf)", [0, 1e30], [math.inf, -1]),
])
def test_bounded_types_take_the_numbers_of_their_interval(text, good, bad):
    key_type = parse_type(text)
    assert [key_type.problem(v) for v in good] == [None] * len(good)
    assert all(key_type.problem(v) for v in bad), [v for v in bad if not key_type.problem(v)]
    items = parse_type(f"list of {text}")
    assert items.problem(good) is None and items.problem([good[0], bad[0]]) is not None
    assert parse_type(f"{text} or null").nullable


@pytest.mark.parametrize("processor, override, match", [
    ("linear_evaluation", "name=off", r"'name' .* must be a string .*got False"),
    ("linear_evaluation", "data.root=2024", r"'data.root' .* must be a string .*got 2024"),
    ("linear_evaluation", "pretrained=1e-3", r"'pretrained' .* must be a string .*got 0.001"),
    ("linear_evaluation", "epochs=1.9", r"'epochs' .* must be a positive integer like the default 100, got 1.9"),
    ("linear_evaluation", "eval_batch_size=0", r"'eval_batch_size' .* must be a positive integer .*got 0$"),
    ("pretrain_acsar", "data.window=0", r"'data.window' .* must be a positive integer like the default 64, got 0$"),
    ("pretrain_acsar", "moco.queue_size=-8", r"'moco.queue_size' .* must be a positive integer .*got -8$"),
    ("pretrain_acsar", "text.tau_cross=0", r"'text.tau_cross' .* must be a positive number .*got 0$"),
    ("pretrain_acsar", "optim.lr=-1", r"'optim.lr' .* must be a positive number .*got -1$"),
    ("pretrain_acsar", "optim.lr=.inf", r"'optim.lr' .* must be a positive number .*got inf$"),
    ("pretrain_acsar", "model.stem_channels=[4,0,4]", r"'model.stem_channels' .* must be a list of positive "
                                                      r"integer items \(item 1 is 0, an integer\)"),
    ("knn_evaluation", "k=[1,0]", r"'k' .* must be a list of positive integer items \(item 1 is 0"),
    ("tsne", "data.window=0", r"'data.window' .* must be a positive integer .*got 0$"),
    ("tsne", "perplexity=0.0", r"'perplexity' .* must be a positive number .*got 0.0$"),
    ("pretrain_acsar", "scheduler.milestones=[a]", r"'scheduler.milestones' .*\(item 0 is 'a'"),
    ("pretrain_acsar", "scheduler.milestones=null", r"'scheduler.milestones' .* is empty \(null\)"),
    ("pretrain_acsar", "augment.order=null", r"'augment.order' .* is empty \(null\)"),
    ("pretrain_acsar", "augment.temporal_crop.min_length=8.5", r"min_length' .* must be a positive integer"),
    ("fusion", "combinations=JB", r"'combinations' .* must be a list"),
    # weights, probabilities and fractions: a bad one used to be taken silently or failed only after the data
    ("pretrain_acsar", "text.weight=-0.5", r"'text.weight' .* must be a non-negative number like the default 0.5, "
                                           r"got -0.5$"),
    ("pretrain_acsar", "model.dropout=1.5", r"'model.dropout' .* must be a number in \[0, 1\] .*got 1.5$"),
    ("linear_evaluation", "model.dropout=-0.1", r"'model.dropout' .* must be a number in \[0, 1\] .*got -0.1$"),
    ("pretrain_acsar", "moco.momentum=1.5", r"'moco.momentum' .* must be a number in \[0, 1\] .*got 1.5$"),
    ("pretrain_acsar", "augment.flip.p=2", r"'augment.flip.p' .* must be a number in \[0, 1\] .*got 2$"),
    ("pretrain_acsar", "augment.rotate.p=-0.1", r"'augment.rotate.p' .* must be a number in \[0, 1\]"),
    ("pretrain_acsar", "augment.scale.p=1.01", r"'augment.scale.p' .* must be a number in \[0, 1\]"),
    ("pretrain_acsar", "augment.shear.s=-1", r"'augment.shear.s' .* must be a non-negative number .*got -1$"),
    ("pretrain_acsar", "augment.shear.s=.nan", r"'augment.shear.s' .* must be a non-negative number .*got nan$"),
    ("pretrain_acsar", "augment.rotate.main_max_deg=-30", r"'augment.rotate.main_max_deg' .* non-negative number"),
    ("pretrain_acsar", "augment.rotate.other_max_deg=.inf", r"'augment.rotate.other_max_deg' .* non-negative"),
    ("pretrain_acsar", "augment.temporal_crop.ratio=[0.5,1.5]", r"'augment.temporal_crop.ratio' .* must be a list "
                                                               r"of number items in \(0, 1\] \(item 1 is 1.5"),
    ("pretrain_acsar", "augment.scale.range=[0.8,.inf]", r"'augment.scale.range' .* list of positive number items"),
    ("pretrain_acsar", "augment.spatial_mask.k=-1", r"'augment.spatial_mask.k' .* non-negative integer .*got -1$"),
    ("pretrain_acsar", "augment.spatial_mask.centres=0", r"'augment.spatial_mask.centres' .* positive integer"),
    ("pretrain_acsar", "augment.spatial_mask.hops=-1", r"'augment.spatial_mask.hops' .* non-negative integer"),
    ("pretrain_acsar", "augment.temporal_mask.cubes=0", r"'augment.temporal_mask.cubes' .* positive integer"),
    ("pretrain_acsar", "augment.temporal_mask.n=-2", r"'augment.temporal_mask.n' .* non-negative integer"),
    ("semi_supervised", "label_fraction=0", r"'label_fraction' .* must be a number in \(0, 1\] .*got 0$"),
    ("semi_supervised", "label_fraction=10", r"'label_fraction' .* must be a number in \(0, 1\] .*got 10$"),
    ("linear_evaluation", "holdout_fraction=1", r"'holdout_fraction' .* must be a number in \(0, 1\) .*got 1$"),
    ("linear_evaluation", "data.center_crop_ratio=1.5", r"'data.center_crop_ratio' .* number in \(0, 1\]"),
    ("knn_evaluation", "data.center_crop_ratio=0", r"'data.center_crop_ratio' .* number in \(0, 1\]"),
    ("tsne", "center_crop_ratio=2", r"'center_crop_ratio' .* must be a number in \(0, 1\] .*got 2$"),
    ("linear_evaluation", "head_init_std=-0.01", r"'head_init_std' .* non-negative number"),
    # counts, intervals, seeds: a negative or zero one failed late (after the data) or acted as another value
    ("pretrain_acsar", "seed=-1", r"'seed' .* must be a non-negative integer like the default 1, got -1$"),
    ("linear_evaluation", "subset_seed=-3", r"'subset_seed' .* non-negative integer"),
    ("pretrain_acsar", "num_workers=-1", r"'num_workers' .* must be a non-negative integer"),
    ("knn_evaluation", "num_workers=-1", r"'num_workers' .* must be a non-negative integer"),
    ("pretrain_acsar", "num_threads=-2", r"'num_threads' .* must be a non-negative integer"),
    ("pretrain_acsar", "save_interval=-5", r"'save_interval' .* must be a non-negative integer"),
    ("pretrain_acsar", "save_every_steps=-5", r"'save_every_steps' .* must be a non-negative integer"),
    ("pretrain_acsar", "log_interval=-1", r"'log_interval' .* must be a non-negative integer"),
    ("linear_evaluation", "scheduler.patience=0", r"'scheduler.patience' .* must be a positive integer .*got 0$"),
    ("linear_evaluation", "scheduler.stop_patience=0", r"'scheduler.stop_patience' .* positive integer"),
    ("pretrain_acsar", "scheduler.milestones=[0]", r"'scheduler.milestones' .* list of positive integer items"),
    ("pretrain_acsar", "scheduler.warmup_epochs=-1", r"'scheduler.warmup_epochs' .* non-negative number"),
    ("pretrain_acsar", "optim.momentum=1", r"'optim.momentum' .* must be a number in \[0, 1\) .*got 1$"),
    ("pretrain_acsar", "optim.weight_decay=-1e-4", r"'optim.weight_decay' .* must be a non-negative number"),
])
def test_the_shipped_defaults_type_their_keys(processor, override, match):
    path = Path(__file__).resolve().parents[1] / "config" / "defaults" / f"{processor}.yaml"
    with pytest.raises(ConfigError, match=match):
        resolve_config(path, None, [override])


def test_the_shipped_defaults_keep_their_legitimate_nulls_and_fractions():
    root = Path(__file__).resolve().parents[1] / "config" / "defaults"
    cfg = resolve_config(root / "pretrain_acsar.yaml", None, ["data.text=null", "scheduler.warmup_epochs=0.5",
                                                              "augment.temporal_crop.min_length=8"])
    assert cfg["data"]["text"] is None and cfg["scheduler"]["warmup_epochs"] == 0.5
    # the ends of the ranges: 0 turns a term or an augmentation off, 1 makes it always fire
    ends = ["text.weight=0", "model.dropout=0", "moco.momentum=1", "augment.flip.p=0", "augment.rotate.p=1",
            "augment.shear.s=0", "augment.rotate.main_max_deg=0", "augment.temporal_crop.ratio=[1, 1]",
            "augment.spatial_mask.k=0", "augment.temporal_mask.n=0", "seed=0", "optim.momentum=0"]
    cfg = resolve_config(root / "pretrain_acsar.yaml", None, ends)
    assert cfg["text"]["weight"] == 0 and cfg["augment"]["temporal_crop"]["ratio"] == [1, 1]
    cfg = resolve_config(root / "semi_supervised.yaml", None, ["label_fraction=1", "holdout_fraction=0.5"])
    assert cfg["label_fraction"] == 1
    cfg = resolve_config(root / "linear_evaluation.yaml", None, ["pretrained=null", "optim.lr=2"])
    assert cfg["pretrained"] is None and cfg["optim"]["lr"] == 2


@pytest.mark.parametrize("override, problem", [
    ("optim.lr=[1,", "expected the node content, but found '<stream end>' at column 4 of the value"),
    ("name=@run", "found character '@' that cannot start any token at column 1 of the value"),
])
def test_an_override_that_is_not_yaml_is_one_line_naming_it(override, problem, tmp_path, repo_root, capsys):
    """The YAML error of an override was printed as PyYAML formats it, over five lines (with a caret under a
    '<unicode string>'): it is one error line now, as a config file's, with the problem and its column."""
    import main as main_module

    code = main_module.main(["pretrain_acsar", "--config", str(repo_root / "config/demo/pretrain.yaml"),
                             f"work_dir={tmp_path / 'runs'}", override])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"error: override {override!r}: value is not valid YAML ({problem})")
    assert not (tmp_path / "runs").exists()


def test_a_config_of_another_processor_says_so(tmp_path, repo_root, capsys):
    """A linear-evaluation config given to pretrain_acsar was refused on 'pretrained' with "did you mean
    'deterministic'?": a key another processor has now names those processors instead of a far spelling."""
    import main as main_module

    linear = repo_root / "config/demo/linear.yaml"
    code = main_module.main(["pretrain_acsar", "--config", str(linear), f"work_dir={tmp_path / 'runs'}"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"error: unknown config key 'pretrained' (set in {linear}): a key of finetune, "
                          f"knn_evaluation, linear_evaluation, semi_supervised, not of pretrain_acsar; is the config "
                          f"meant for another processor?")
    assert "deterministic" not in err and not (tmp_path / "runs").exists()
    code = main_module.main(["linear_evaluation", "--config", str(linear), "moco.queue_size=8"])
    assert code == 2 and "a key of pretrain_acsar, not of linear_evaluation; is the override meant" in \
        capsys.readouterr().err
    code = main_module.main(["linear_evaluation", "--config", str(linear), "optim.lrr=1"])       # a plain typo
    assert code == 2 and "did you mean 'optim.lr'?" in capsys.readouterr().err
