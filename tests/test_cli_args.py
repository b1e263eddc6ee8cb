"""Every numeric option of every alexnet subcommand is validated where it is parsed, by the shared
validators of alexnet/args.py; checkpoints' configurations are held to the same rules; an empty
test set is an error; evaluate refuses what would give a meaningless number."""
from __future__ import annotations

import argparse
import math

import numpy as np
import pytest

from alexnet import args as V
from alexnet.__main__ import main, make_parser
from alexnet import runs
import alexnet
from minidl.train import checkpoint as ckpt_io
import tracemalloc
from minidl.data import DataLoader
from minidl.train.trainer import evaluate
from test_train import TinyDataset, make_trainer, tiny_model


def numeric_options():
    """(command, option string, validator) for every option of every subcommand that takes a number."""
    parser = make_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    found = []
    for command, p in sub.choices.items():
        for action in p._actions:
            if action.type in (int, float):
                raise AssertionError(f"alexnet {command} {action.option_strings}: a bare {action.type.__name__}, "
                                     "not a validator from alexnet.args")
            if isinstance(action.type, V.Number):
                found.append((command, action.option_strings[0], action.type))
    return found


def bad_values(rule: V.Number) -> list:
    """Values the rule must refuse, derived from its own bounds."""
    bad = ["nan", "inf", "-inf", "abc"]
    if rule.kind is int:
        bad.append("1.5")
    if rule.low is not None:
        bad.append(str(rule.low - 1) if rule.kind is int else str(rule.low - 0.5))
        if rule.low_open:
            bad.append(str(rule.low))
    if rule.high is not None:
        bad.append(str(rule.high + 1))
        if rule.high_open:
            bad.append(str(rule.high))
    return bad


def good_value(rule: V.Number) -> str:
    low = rule.low if rule.low is not None else 0
    value = low + 1 if rule.kind is int else low + (0.5 if rule.high is None else (rule.high - low) / 2)
    return str(value)


POSITIONAL = {"evaluate": ["ck.npz"], "summary": ["mini"], "diagnose": ["--model", "mini"]}


def test_every_command_has_numeric_options_and_all_are_validated():
    commands = {c for c, _, _ in numeric_options()}
    assert commands >= {"train", "evaluate", "ablate", "diagnose", "bench", "summary"}


@pytest.mark.parametrize("command,option,rule", numeric_options(), ids=lambda v: str(v))
def test_bad_numbers_are_refused_where_they_are_parsed(command, option, rule, capsys):
    parser = make_parser()
    base = [command] + POSITIONAL.get(command, [])
    assert getattr(parser.parse_args(base + [option, good_value(rule)]), option.lstrip("-").replace("-", "_")) \
        == rule(good_value(rule))
    for text in bad_values(rule):
        with pytest.raises(SystemExit) as info:
            parser.parse_args(base + [f"{option}={text}"])
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert f"argument {option}" in err and "must be" in err, (option, text, err)


@pytest.mark.parametrize("argv", [["train", "--time-budget", "-5"], ["train", "--step-size", "0"],
                                  ["train", "--gamma", "-1"], ["train", "--width", "nan"],
                                  ["evaluate", "x.npz", "--batch-size", "0"], ["evaluate", "x.npz", "--limit-test", "0"],
                                  ["evaluate", "x.npz", "--limit-test", "-1"]])
def test_the_reported_cases(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2 and "must be" in capsys.readouterr().err


def test_validators_on_parsed_values():
    assert V.POSITIVE_INT.check(3, "x") == 3
    for value in (0, -1, 2.0, True, "3", None):
        with pytest.raises(ValueError, match="x must be an integer >= 1"):
            V.POSITIVE_INT.check(value, "x")
    with pytest.raises(ValueError):
        V.WIDTH.check(math.nan, "width")
    assert V.TIME_BUDGET("0") == 0.0


def test_a_configuration_is_checked_by_the_same_rules():
    cfg = runs.resolve_config({"model": "mini"})
    assert runs.check_config(dict(cfg), "here") == cfg
    for key, value in [("width", 200.0), ("batch_size", 0), ("lr", -0.1), ("dropout", 1.0), ("seed", "0"),
                       ("model", "huge"), ("schedule_args", {"gamma": -1})]:
        with pytest.raises(ValueError, match=rf"here: configuration key '{key if key != 'schedule_args' else 'gamma'}'"):
            runs.check_config({**cfg, key: value}, "here")


# -------------------------------------------------------------------------------- evaluate
def _mini_checkpoint(path, **options):
    model = alexnet.build("mini", 10, width=0.125)
    cfg = runs.resolve_config({"model": "mini", "width": 0.125})
    meta = {"model": "mini", "num_classes": 10, "options": {"width": 0.125, **options}, "config": cfg,
            "epoch": 1, "step": 0}
    ckpt_io.save_checkpoint(str(path), model_state=model.state_dict(), meta=meta)
    return model


def test_evaluate_refuses_metadata_asking_for_a_huge_model_before_building_it(tmp_path, capsys):
    path = tmp_path / "ck.npz"
    _mini_checkpoint(path, width=200.0)
    tracemalloc.start()
    assert main(["evaluate", str(path), "--no-progress"]) == 2
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    err = capsys.readouterr().err
    assert "ck.npz" in err and "asks for model 'mini'" in err and "refusing to build it" in err
    assert peak < 100 << 20
    _mini_checkpoint(path, width="wide")
    assert main(["evaluate", str(path), "--no-progress"]) == 2
    assert "describes no model that can be built" in capsys.readouterr().err


def test_evaluate_refuses_non_finite_weights(tmp_path, capsys):
    path = tmp_path / "ck.npz"
    model = _mini_checkpoint(path)
    ck = ckpt_io.load_checkpoint(str(path))
    state = dict(ck.model_state)
    state["classifier.6.weight"] = state["classifier.6.weight"].copy()
    state["classifier.6.weight"][0, 0] = np.nan
    ckpt_io.save_checkpoint(str(path), model_state=state, meta=ck.meta)
    assert main(["evaluate", str(path), "--no-progress"]) == 3
    err = capsys.readouterr().err
    assert "non-finite weights" in err and "classifier.6.weight" in err
    del model


def test_no_test_images_is_an_error_in_trainer_and_evaluate(tmp_path):
    with pytest.raises(ValueError, match="is empty: 0 samples"):   # minidl's loader refuses it at once
        DataLoader(TinyDataset(0), batch_size=4)
    empty = []                                                     # any other iterable of no batches
    with pytest.raises(ValueError, match="no test images"):
        evaluate(tiny_model(), empty, 3)
    trainer = make_trainer(tmp_path, epochs=1)
    with pytest.raises(ValueError, match="the test set has no images"):
        type(trainer)(trainer.model, trainer.optimizer, trainer.train_loader, empty, epochs=1, num_classes=3)
