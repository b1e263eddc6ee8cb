"""alexnet ablate: its statistics (t quantile, Welch interval, verdicts) and its resume/skip logic."""
import json
import math
import os

import numpy as np
import pytest

from alexnet import ablation_stats as S, models
from alexnet.commands import ablate
from minidl.train.diagnostic_plots import plot_ablation
from minidl.train.trainer import CHECKPOINT, TrainingInterrupted


# ------------------------------------------------------------------ statistics
@pytest.mark.parametrize("df, expected", [(1, 12.706), (2, 4.303), (4, 2.776), (10, 2.228), (30, 2.042),
                                          (1e7, 1.960)])
def test_t_quantile_matches_the_printed_tables(df, expected):
    assert S.t_quantile(0.975, df) == pytest.approx(expected, abs=6e-4)
    assert S.t_quantile(0.025, df) == pytest.approx(-expected, abs=6e-4)


def test_t_cdf_agrees_with_integrating_the_density():
    for df in (1.0, 2.5, 7.0):
        t = np.linspace(0.0, 3.0, 200001)
        pdf = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi) \
            * (1 + t * t / df) ** (-(df + 1) / 2)
        integral = 0.5 + float(np.sum((pdf[1:] + pdf[:-1]) / 2 * np.diff(t)))   # trapezoid rule
        assert S.t_cdf(3.0, df) == pytest.approx(integral, abs=1e-8)
        assert S.t_cdf(-3.0, df) == pytest.approx(1 - integral, abs=1e-8)
        assert S.t_cdf(S.t_quantile(0.9, df), df) == pytest.approx(0.9, abs=1e-10)


def test_welch_against_a_hand_computation():
    # a: mean 2, variance 1; b: mean 5, variance ((-3)^2 + (-1)^2 + 4^2) / 2 = 13
    # se^2 = 1/3 + 13/3 = 14/3; df = (14/3)^2 / ((1/3)^2/2 + (13/3)^2/2) = 392/170
    w = S.welch([1, 2, 3], [2, 4, 9])
    assert w["diff"] == pytest.approx(-3.0)
    assert w["se"] == pytest.approx(math.sqrt(14 / 3))
    assert w["df"] == pytest.approx(392 / 170)
    assert w["t"] == pytest.approx(S.t_quantile(0.975, 392 / 170))
    assert (w["low"], w["high"]) == pytest.approx((-3 - w["t"] * w["se"], -3 + w["t"] * w["se"]))
    # equal variances and sizes: Welch's df is the pooled test's n_a + n_b - 2
    assert S.welch([1, 2, 3], [4, 5, 6])["df"] == pytest.approx(4.0)
    assert S.welch([0.1], [0.2, 0.3])["low"] is None          # one seed: no interval


def test_verdicts_follow_the_interval():
    assert S.verdict(0.002, 0.02, +1) == S.HOLDS
    assert S.verdict(-0.01, 0.02, +1) == S.NOT_VISIBLE
    assert S.verdict(-0.03, -0.01, +1) == S.REVERSED
    assert S.verdict(-0.03, -0.01, -1) == S.HOLDS
    assert S.verdict(None, None, +1) == S.UNDECIDED
    with pytest.raises(ValueError, match="direction"):
        S.verdict(0.1, 0.2, 0)


def fake_result(setting, seed, error, gap):
    return dict(model="mini", setting=setting, seed=seed, test_error=error, gap=gap,
                history=[dict(epoch=1, train_acc=0.5, test_acc=0.5), dict(epoch=2, train_acc=1 - error + gap,
                                                                          test_acc=1 - error)])


def test_summary_and_claims_from_seed_results():
    runs = [fake_result("baseline", s, e, g) for s, (e, g) in enumerate([(0.10, 0.01), (0.11, 0.02), (0.12, 0.01)])]
    runs += [fake_result("no-lrn", s, e, 0.01) for s, e in enumerate([0.14, 0.15, 0.16])]      # clearly worse
    runs += [fake_result("nonoverlap-pool", s, e, 0.01) for s, e in enumerate([0.10, 0.13, 0.11])]
    runs += [fake_result("no-dropout", s, e, g) for s, (e, g) in enumerate([(0.08, 0.05), (0.09, 0.06), (0.07, 0.07)])]
    rows = {r["setting"]: r for r in ablate.summarise(runs)}
    assert rows["baseline"]["mean_error"] == pytest.approx(0.11)
    assert rows["baseline"]["std_error"] == pytest.approx(np.std([0.10, 0.11, 0.12], ddof=1))
    assert rows["baseline"]["delta_error"] is None
    assert rows["no-lrn"]["delta_error"]["diff"] == pytest.approx(0.04)
    verdicts = {(v["setting"], v["metric"]): v for v in ablate.claims(list(rows.values()))}
    assert verdicts[("no-lrn", "test_error")]["verdict"] == S.HOLDS
    assert verdicts[("nonoverlap-pool", "test_error")]["verdict"] == S.NOT_VISIBLE
    assert verdicts[("no-dropout", "test_error")]["verdict"] == S.REVERSED
    assert verdicts[("no-dropout", "gap")]["verdict"] == S.HOLDS
    assert "+4.00 points" in verdicts[("no-lrn", "test_error")]["text"]
    table = ablate.markdown(list(rows.values()), list(verdicts.values()),
                            dict(seeds=3, epochs=2, train_images="all", test_images="all", width=0.5))
    assert "| mini | no-lrn | 3 | 15.00 ± 1.00 | +4.00 [" in table and "reversed" in table


# ------------------------------------------------------------------ resume and skip (a fake trainer)
class FakeTrain:
    """Stands in for ablate._train: records its calls; can be told to be interrupted on a call."""

    def __init__(self, interrupt_on=None):
        self.calls, self.interrupt_on = [], interrupt_on

    def __call__(self, given, *, resume, gap_images, progress, label):
        self.calls.append((given["out"], resume))
        if len(self.calls) == self.interrupt_on:
            open(os.path.join(given["out"], CHECKPOINT), "w").close()     # as the trainer's save would
            raise TrainingInterrupted("interrupted at epoch 1, step 3", saved=True, epoch=0, step=3)
        history = [dict(epoch=1, train_loss=1.0, train_acc=0.6, test_loss=1.1, test_acc=0.55 + 0.01 * given["seed"])]
        return dict(history=history, train_eval_acc=0.62, train_eval_images=64, epochs=given["epochs"] or 3,
                    batch_size=32, lr=0.05, limit_train=64, limit_test=32)


def given_for(out, seed, epochs=1):
    return ablate.run_given("mini", "baseline", seed, out=str(out / f"seed{seed}"), epochs=epochs)


def test_finished_runs_are_skipped_interrupted_ones_resumed_and_other_configs_refused(tmp_path, monkeypatch):
    fake = FakeTrain(interrupt_on=2)
    monkeypatch.setattr(ablate, "_train", fake)
    first = ablate.run_one(given_for(tmp_path, 0), "baseline", str(tmp_path / "seed0"))
    assert not first["skipped"] and first["test_error"] == pytest.approx(0.45) and first["gap"] == pytest.approx(0.07)
    saved = json.loads((tmp_path / "seed0" / "result.json").read_text())
    assert saved["history"][0]["test_loss"] == 1.1 and saved["spec"]["epochs"] == 1
    with pytest.raises(TrainingInterrupted):
        ablate.run_one(given_for(tmp_path, 1), "baseline", str(tmp_path / "seed1"))
    assert not (tmp_path / "seed1" / "result.json").exists()
    # the rerun: seed 0 is read back, seed 1 continues from its checkpoint
    again = [ablate.run_one(given_for(tmp_path, s), "baseline", str(tmp_path / f"seed{s}")) for s in (0, 1)]
    assert again[0]["skipped"] and again[0]["test_error"] == first["test_error"]
    assert not again[1]["skipped"] and again[1]["resumed"]
    assert fake.calls == [(str(tmp_path / "seed0"), False), (str(tmp_path / "seed1"), False),
                          (str(tmp_path / "seed1"), True)]
    # another configuration in the same directories: refused, finished or not
    with pytest.raises(ablate.ConfigMismatch, match=r"epochs: 1 there, 2 now.*remove"):
        ablate.run_one(given_for(tmp_path, 0, epochs=2), "baseline", str(tmp_path / "seed0"))
    (tmp_path / "seed1" / "result.json").unlink()
    with pytest.raises(ablate.ConfigMismatch, match="unfinished run of another configuration"):
        ablate.run_one(given_for(tmp_path, 1, epochs=2), "baseline", str(tmp_path / "seed1"))
    assert len(fake.calls) == 3


def test_runs_saved_before_a_configuration_key_existed_still_match(tmp_path, monkeypatch):
    """A finished run whose saved spec predates label_smoothing (no such key) matches the same
    configuration now (ablate runs without label smoothing), and one saved with 0.1 does not."""
    monkeypatch.setattr(ablate, "_train", FakeTrain())
    assert ablate.run_given("mini", "baseline", 0, out="x")["label_smoothing"] == 0.0   # not the recipe's 0.1
    ablate.run_one(given_for(tmp_path, 0), "baseline", str(tmp_path / "seed0"))
    path = tmp_path / "seed0" / "result.json"
    saved = json.loads(path.read_text())
    assert saved["spec"]["label_smoothing"] == 0.0
    del saved["spec"]["label_smoothing"]                      # as a run written before the key existed
    path.write_text(json.dumps(saved))
    assert ablate.run_one(given_for(tmp_path, 0), "baseline", str(tmp_path / "seed0"))["skipped"]
    saved["spec"]["label_smoothing"] = None                   # the key's first default, also meaning none
    path.write_text(json.dumps(saved))
    assert ablate.run_one(given_for(tmp_path, 0), "baseline", str(tmp_path / "seed0"))["skipped"]
    saved["spec"]["label_smoothing"] = 0.1
    path.write_text(json.dumps(saved))
    with pytest.raises(ablate.ConfigMismatch, match=r"label_smoothing: 0.1 there, 0.0 now"):
        ablate.run_one(given_for(tmp_path, 0), "baseline", str(tmp_path / "seed0"))


def test_the_curves_figure_draws_every_setting(tmp_path):
    runs = [fake_result(s, k, 0.1 + 0.01 * k, 0.01) for s in ("baseline", "no-lrn") for k in range(2)]
    runs[-1]["history"][-1]["epoch_fraction"] = 0.5
    plot_ablation(runs, str(tmp_path / "ablation.png"), title="fake")
    assert (tmp_path / "ablation.png").stat().st_size > 1000


def test_ablation_runs_have_no_time_budget_even_when_the_recipe_has_one():
    # the main job's recipe (mini) carries a time budget; a budget would cut slow runs short and
    # make them incomparable, so every ablation run trains all its epochs
    assert models.recipe("mini").get("time_budget")
    for setting in ablate.SETTINGS:
        assert ablate.run_spec(ablate.run_given("mini", setting, 0, out="unused"))["time_budget"] == 0
