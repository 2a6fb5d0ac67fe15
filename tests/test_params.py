import pytest

from postergenre.methods.params import ParamsError, load, parse_size, validate
from tests.conftest import REPO


def test_repository_params_are_valid():
    params = load(REPO / "params.yaml")
    assert params["data"]["source"] == "synthetic"
    assert params["resize"]["sizes"] == ["64x64", "100x150", "224x224"]


def test_unknown_top_level_key_is_named_with_allowed_keys(default_params):
    default_params["kk"] = 40
    with pytest.raises(ParamsError, match=r"unknown key 'kk'.*allowed here: .*\bk\b.*seed"):
        validate(default_params)


def test_misspelt_nested_key_is_named_with_its_path(default_params):
    default_params["data"]["sorce"] = "tmdb"
    with pytest.raises(ParamsError, match=r"unknown key 'data.sorce'.*allowed here: .*source"):
        validate(default_params)


def test_wrong_type_is_an_error(default_params):
    default_params["k"] = "forty"
    with pytest.raises(ParamsError, match="'k' must be a valid integer, got 'forty'"):
        validate(default_params)


def test_bool_is_not_accepted_as_a_number(default_params):
    default_params["data"]["synthetic"]["n"] = True
    with pytest.raises(ParamsError, match="data.synthetic.n"):
        validate(default_params)


def test_missing_key_is_an_error(default_params):
    del default_params["split"]["dev"]
    with pytest.raises(ParamsError, match="split: missing key.*dev"):
        validate(default_params)


def test_unknown_source_is_an_error(default_params):
    default_params["data"]["source"] = "imdb"
    with pytest.raises(
        ParamsError, match="'data.source' must be 'synthetic', 'tmdb', 'movielens' or 'csv', got 'imdb'"
    ):
        validate(default_params)


def test_fractions_must_sum_to_one(default_params):
    default_params["split"]["train"] = 0.9
    with pytest.raises(ParamsError, match="sum to 1"):
        validate(default_params)


def test_method_size_must_be_a_resized_size(default_params):
    default_params["methods"]["baseline"]["size"] = "32x32"
    with pytest.raises(ParamsError, match="not one of resize.sizes"):
        validate(default_params)


@pytest.mark.parametrize("text, size", [("64x64", (64, 64)), ("100x150", (100, 150))])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["64", "axb", "0x10", "-5x5"])
def test_parse_size_rejects_nonsense(text):
    with pytest.raises(ParamsError):
        parse_size(text)


def test_missing_params_file_is_a_clear_error(tmp_path):
    with pytest.raises(ParamsError, match="no such params file"):
        load(tmp_path / "params.yaml")


def test_cli_reports_a_params_error_and_exits_2(tmp_path, capsys, default_params):
    import yaml

    from postergenre.apps.cli import main

    default_params["resize"]["sizez"] = ["64x64"]
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(default_params))
    assert main(["--params", str(path), "check-params"]) == 2
    assert "unknown key 'resize.sizez'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda p: p["embed"].update(backbones=["resnet50"]),
            "'embed.backbones' must be 'efficientnet_lite0', 'efficientnet_lite1' or "
            "'efficientnet_lite2', got 'resnet50'",
        ),
        (lambda p: p["embed"].update(backbones=[]), "'embed.backbones' must list at least 1 item"),
        (
            lambda p: p["embed"].update(views=["squash", "squash"]),
            "'embed.views': each once, got \\['squash', 'squash'\\]",
        ),
        (lambda p: p["embed"].update(pool="max"), "'embed.pool' must be 'concat' or 'mean', got 'max'"),
        (lambda p: p["embed"].update(size="32x32"), "embed.size '32x32' is not one of resize.sizes"),
        (
            lambda p: p["embed"].update(batch_size=0),
            "'embed.batch_size' must be greater than or equal to 1, got 0",
        ),
        (
            lambda p: p["feature_methods"]["head"].update(loss="focal"),
            "'feature_methods.head.loss' must be 'bce', 'weighted_bce' or 'asl', got 'focal'",
        ),
        (
            lambda p: p["feature_methods"]["head"].update(weight_decay=[]),
            "'feature_methods.head.weight_decay' must list at least 1 item",
        ),
        (
            lambda p: p["feature_methods"]["head"].update(weight_decay=[0.1, -1]),
            "'feature_methods.head.weight_decay' must be greater than or equal to 0, got -1",
        ),
        (
            lambda p: p["feature_methods"]["head"].update(finetune_blocks=17),
            "'feature_methods.head.finetune_blocks' must be less than or equal to 16, got 17",
        ),
        (
            lambda p: p["feature_methods"]["head"].update(oversample=1),
            "'feature_methods.head.oversample' must be a valid boolean, got 1",
        ),
        (
            lambda p: p["feature_methods"].update(mlknn={"s": 1.0}),
            "unknown method 'feature_methods.mlknn'.*known in feature_methods: head, mlknn_features",
        ),
        (
            lambda p: p["methods"]["mlknn"].update(uses="k"),
            "unknown key 'methods.mlknn.uses'.*allowed here: family, reads, s, size",
        ),
        (
            lambda p: p["methods"]["custom"].update(dropout=1.5),
            "'methods.custom.dropout' must be less than 1, got 1.5",
        ),
    ],
)
def test_feature_method_settings_are_checked(default_params, edit, message):
    edit(default_params)
    with pytest.raises(ParamsError, match=message):
        validate(default_params)


def test_backbone_names_match_the_wheels_backbone_py_knows():
    from postergenre.core import backbone
    from postergenre.methods.params import BACKBONES

    assert set(BACKBONES) == set(backbone.WHEELS)
    from postergenre.methods.params import VIEWS

    assert VIEWS == backbone.VIEWS


def test_a_method_reads_its_own_section_and_the_top_level_params_its_spec_names(default_params):
    from postergenre.methods.params import method_settings, stage_params

    assert stage_params(default_params, "ovr") == [
        "seed",
        "k",
        "methods.ovr",
        "resize.sizes",
        "resize.max_pixels",
        "data.source",
        "data.path",
    ]
    assert stage_params(default_params, "head")[-1] == "embed"
    kwargs, size, reads = method_settings(default_params, "mlknn_features")
    assert size == default_params["embed"]["size"] and kwargs["k"] == default_params["k"]
    assert kwargs["backbones"] == ["efficientnet_lite0"] and kwargs["views"] == ["squash"]
    assert reads["k"] == default_params["k"]


def test_feature_methods_may_be_left_out(default_params):
    del default_params["ensemble"]  # it names mlknn_features as a member
    del default_params["feature_methods"]["mlknn_features"]
    assert "head" in validate(default_params)["feature_methods"]


@pytest.mark.parametrize("section", ["data", "clean", "resize", "embed", "training", "split"])
def test_each_sections_defaults_are_params_yaml(default_params, section):
    from postergenre.methods.params import Params

    model = Params.model_fields[section].annotation
    assert model().model_dump() == default_params[section]


def test_each_methods_defaults_are_its_params_yaml_section(default_params):
    from postergenre.methods import specs
    from postergenre.methods.params import all_methods

    sections = all_methods(default_params)
    assert set(sections) <= set(specs())
    for name, section in sections.items():
        assert specs()[name].settings().model_dump() == section, name


def test_a_method_reads_its_defaults_from_its_settings_alone():
    from postergenre.methods import estimator_class

    head = estimator_class("head")(["Drama", "Comedy"], "224x224", 0)
    assert head.params["hidden"] == 512 and head.params["epochs"] == 40
    assert head.params["weight_decay"] == [1.0, 3.0, 10.0]
    with pytest.raises(ValueError, match="loss"):
        estimator_class("head")(["Drama"], "224x224", 0, loss="focal")


def test_a_params_entry_must_name_the_family_its_method_runs(default_params):
    default_params["methods"]["mlknn"]["family"] = "nets"
    with pytest.raises(ParamsError, match="'methods.mlknn.family' must be 'knn'"):
        validate(default_params)
    del default_params["methods"]["mlknn"]["family"]
    with pytest.raises(ParamsError, match="'methods.mlknn.family' must be 'knn'.*got None"):
        validate(default_params)
