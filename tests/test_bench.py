"""The benchmark harness runs in quick mode and writes results of the documented shape.
No test asserts a time: timings are checked by reading the benchmark's ratios."""
import json
import os

import pytest

from alexnet import bench, bench_report
import numpy as np
import alexnet
import minidl as md
from alexnet.twins import torch_twin
from parity import assert_close

pytestmark = pytest.mark.slow

KERNEL_KEYS = {"kernel", "family", "backend", "device", "forward_s", "backward_s", "torch_forward_s",
               "torch_backward_s", "speedup_fwd_bwd"}


def test_quick_run_writes_json_with_schema(tmp_path):
    results = bench.run(quick=True, parts=("kernels", "steps"), out_dir=str(tmp_path), log=lambda *a: None,
                        repeats=1)
    with open(results["path"]) as f:
        saved = json.load(f)
    families = {r["family"] for r in saved["kernels"]}
    assert families == {"conv", "maxpool", "lrn", "fc", "dropout", "sgd"}
    backends = {(r["family"], r["backend"]) for r in saved["kernels"]}
    assert ("lrn", "reference") in backends and ("lrn", "fast") in backends
    for row in saved["kernels"]:
        assert KERNEL_KEYS <= set(row), row["kernel"]
        assert row["forward_s"] > 0 and row["torch_forward_s"] > 0
    conv = [r for r in saved["kernels"] if r["family"] == "conv"]
    assert all(0 < r["fraction_of_sgemm"] for r in conv)
    (step,) = saved["steps"]
    assert step["model"] == "mini" and step["images_per_s"] > 0 and step["torch_images_per_s"] > 0
    assert {"python", "numpy", "numba", "torch"} <= set(saved["environment"])

    md_text = bench_report.markdown(saved)
    assert "| lrn1 | fast | cpu |" in md_text and "### Targets" in md_text
    doc = tmp_path / "bench.md"
    doc.write_text("# Title\n\nhand-written text\n")
    bench_report.update_markdown(str(doc), "cpu", md_text)
    bench_report.update_markdown(str(doc), "cpu", md_text)   # replaced, not appended twice
    text = doc.read_text()
    assert text.count("<!-- results:cpu start -->") == 1 and "hand-written text" in text
    assert bench_report.bar_chart(saved, str(tmp_path / "chart.png")) and os.path.getsize(tmp_path / "chart.png")


def test_torch_twin_computes_the_same_logits():
    import torch  # noqa: PLC0415 - optional dependency


    model = alexnet.build("mini", num_classes=10, width=0.25).eval()
    twin = torch_twin(model).eval()
    x = np.random.default_rng(0).standard_normal((2, 1, 28, 28)).astype(np.float32)
    with md.no_grad(), torch.no_grad():
        assert_close(model(md.tensor(x)), twin(torch.tensor(x)), np.float32, "mini logits", rtol=1e-3)


def test_step_functions_build_only_the_sides_asked_for():
    """The memory benchmark measures one framework per process: the other must not be built."""
    ours, theirs = bench.step_functions("mini", 2, "cpu", sides=("ours",))
    assert theirs is None
    ours()
    ours, theirs = bench.step_functions("mini", 2, "cpu", sides=("torch",))
    assert ours is None
    theirs()


def test_interleaved_runs_each_setup_untimed_before_its_side():
    """The backward rows build a fresh graph before every timed backward: setup_ours / setup_theirs
    run once before each call of their own side (warm-up included), never between the clock reads."""
    log = []
    ours, theirs = (lambda: log.append("ours")), (lambda: log.append("torch"))
    bench.interleaved(ours, theirs, repeats=3, warmup=1,
                      setup_ours=lambda: log.append("setup ours"), setup_theirs=lambda: log.append("setup torch"))
    calls = [i for i, e in enumerate(log) if e in ("ours", "torch")]
    assert len(calls) == 8 and log.count("setup ours") == log.count("setup torch") == 4
    for i in calls:
        assert log[i - 1] == f"setup {log[i]}"   # each call right after its own side's setup
    # A B B A A B after the warm-up pair, as without setups
    assert [log[i] for i in calls] == ["ours", "torch", "ours", "torch", "torch", "ours", "ours", "torch"]
