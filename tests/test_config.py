"""TrainingConfig: YAML round trip, validation errors, overrides, the commented default."""

import dataclasses

import pytest
import yaml

from pfdtrain.config.training_config import (ConfigError, OptimizerConfig, TrainingConfig,
                                             apply_overrides, config_reference_markdown)


def _non_default() -> TrainingConfig:
    cfg = TrainingConfig()
    cfg.name = "exp-1"
    cfg.num_epochs = 7
    cfg.optimizer = OptimizerConfig(name="sgd", lr=0.05, betas=[0.8, 0.99], nesterov=True)
    cfg.scheduler.name = "onecycle"
    cfg.scheduler.max_lr = 0.2
    cfg.model.params = {"base_channels": 8, "nested": {"a": [1, 2]}}
    cfg.mixed_precision.enabled = True
    return cfg


def test_yaml_round_trip_is_exact_through_safe_load(tmp_path):
    cfg = _non_default()
    path = tmp_path / "cfg.yaml"
    text = cfg.to_yaml(path)
    assert "!!python" not in text
    loaded = TrainingConfig.from_yaml(path)
    assert loaded == cfg
    assert isinstance(loaded.optimizer, OptimizerConfig)  # nested sections rebuilt
    assert TrainingConfig.from_dict(yaml.safe_load(cfg.to_yaml(comments=False))) == cfg


def test_dict_round_trip_and_partial_dicts_take_defaults():
    cfg = _non_default()
    assert TrainingConfig.from_dict(cfg.to_dict()) == cfg
    partial = TrainingConfig.from_dict({"optimizer": {"lr": 0.1}})
    assert partial.optimizer.lr == 0.1 and partial.optimizer.name == "adamw"
    assert partial.model == TrainingConfig().model


def test_unknown_key_names_key_section_and_closest_match():
    with pytest.raises(ConfigError) as err:
        TrainingConfig.from_dict({"optimizer": {"learning_rate": 0.1, "lr": 0.1}})
    msg = str(err.value)
    assert "'learning_rate'" in msg and "'optimizer'" in msg
    with pytest.raises(ConfigError, match=r"unknown config key 'lrr' in section 'optimizer'; "
                                          r"did you mean 'lr'\?"):
        TrainingConfig.from_dict({"optimizer": {"lrr": 0.1}})
    with pytest.raises(ConfigError, match=r"'num_epoch' in section 'top level'; did you mean "
                                          r"'num_epochs'"):
        TrainingConfig.from_dict({"num_epoch": 3})


@pytest.mark.parametrize("data, fragment", [
    ({"num_epochs": "ten"}, "num_epochs must be an int"),
    ({"num_epochs": 0}, "num_epochs = 0 is out of range; allowed: >= 1"),
    ({"deterministic": "yes"}, "deterministic must be a bool"),
    ({"model": {"name": "lstm"}}, "allowed values: cnn1d, resnet18_1d, cnn_lstm"),
    ({"scheduler": {"name": "cosin"}}, "Did you mean 'cosine'"),
    ({"data": {"val_fraction": 0.7}}, "between 0.0 and 0.5"),
    ({"device": "gpu"}, "device = 'gpu' is not allowed"),
    ({"optimizer": {"lr": None}}, "optimizer.lr must be a float, got null"),
    ({"data": 3}, "section 'data' must be a mapping"),
    ({"optimizer": {"lr": float("nan")}}, "optimizer.lr must be a finite number"),
    ({"model": {"dropout": "nan"}}, "model.dropout must be a finite number"),
])
def test_wrong_type_or_range_names_field_and_allowed_values(data, fragment):
    with pytest.raises(ConfigError) as err:
        TrainingConfig.from_dict(data)
    assert fragment in str(err.value)


def test_float_fields_accept_yaml_exponent_strings():
    # PyYAML reads 3e-4 (no dot) as a string; users write it anyway.
    assert TrainingConfig.from_dict(yaml.safe_load("optimizer: {lr: 3e-4}")).optimizer.lr == 3e-4


def test_overrides_parse_yaml_values_and_validate():
    cfg = apply_overrides(TrainingConfig(), ["optimizer.lr=3e-4", "num_epochs=5",
                                             "model.params={base_channels: 8}",
                                             "scheduler.max_lr=null"])
    assert (cfg.optimizer.lr, cfg.num_epochs, cfg.model.params) == (3e-4, 5, {"base_channels": 8})
    with pytest.raises(ConfigError, match="did you mean 'optimizer'"):
        apply_overrides(TrainingConfig(), ["optimiser.lr=1"])
    with pytest.raises(ConfigError, match="must look like section.key=value"):
        apply_overrides(TrainingConfig(), ["optimizer.lr"])
    with pytest.raises(ConfigError, match="'seed' is not a config section"):
        apply_overrides(TrainingConfig(), ["seed.value=1"])


def test_from_yaml_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        TrainingConfig.from_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("optimizer: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml is not valid YAML"):
        TrainingConfig.from_yaml(bad)
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        TrainingConfig.from_yaml(listing)
    unsafe = tmp_path / "unsafe.yaml"
    unsafe.write_text("name: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        TrainingConfig.from_yaml(unsafe)


def test_commented_default_documents_every_field():
    text = TrainingConfig().to_yaml()
    for section in dataclasses.fields(TrainingConfig):
        assert f"{section.name}:" in text
    assert "# learning rate" in text
    assert TrainingConfig.from_dict(yaml.safe_load(text)) == TrainingConfig()
    reference = config_reference_markdown()
    assert "| `optimizer.lr` | `0.001` |" in reference


def test_optimizer_betas_must_be_two_numbers():
    from pfdtrain.training.optimization import create_optimizer
    model = __import__("torch").nn.Linear(2, 2)
    cfg = apply_overrides(TrainingConfig(), ["optimizer.betas=[a, b]"])
    with pytest.raises(ConfigError, match=r"optimizer.betas must hold two numbers"):
        create_optimizer(model, cfg.optimizer)


def test_yaml_nan_override_is_refused():
    with pytest.raises(ConfigError, match="optimizer.lr must be a finite number"):
        apply_overrides(TrainingConfig(), ["optimizer.lr=.nan"])


def test_the_cross_condition_recipe_loads_and_augments():
    """recipes/cross-condition.yaml (README "Generalisation") is a valid partial config: what
    bench/bench_generalization.py measures as its augmentation row."""
    from pathlib import Path

    recipe = Path(__file__).resolve().parent.parent / "recipes" / "cross-condition.yaml"
    config = TrainingConfig.from_yaml(recipe)
    assert config.augment.enabled and config.augment.noise_snr_db == [-6, 20]
    assert (config.data.window_length, config.data.window_stride) == (2048, 1024)
    assert (config.checkpoint.monitor, config.checkpoint.mode) == ("val_loss", "min")
    assert config.model.name == TrainingConfig().model.name  # the model stays the default
