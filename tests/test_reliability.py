"""Nothing lost and nothing silently wrong under faults: interrupts at the worst moments (signals
sent from a hook at the exact point, not after a sleep), SIGTERM, files left by a killed write,
two writers in one output directory. Untrusted checkpoints: tests/test_checkpoint.py; arguments:
tests/test_cli_args.py. What is promised: docs/reliability.md."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from minidl.train import checkpoint as ckpt_io
from minidl.train.lock import OutDirBusy, OutDirLock
from minidl.train.trainer import CHECKPOINT, TrainingInterrupted

from test_train import assert_same_weights, make_trainer, weights
from alexnet.__main__ import main
from alexnet.commands import train as train_cmd

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class SignalBeforeBatch:
    """The train loader, sending ``signals`` to this process just before it yields batch ``step`` of
    ``epoch``: after the previous step's update finished, before the next step starts."""

    def __init__(self, loader, epoch, step, signals):
        self.loader, self.at, self.signals = loader, (epoch, step), signals
        self.dataset = loader.dataset

    def __len__(self):
        return len(self.loader)

    def epoch(self, e, start_batch=0):
        for i, batch in enumerate(self.loader.epoch(e, start_batch=start_batch), start=start_batch):
            if (e, i) == self.at:
                for signum in self.signals:
                    os.kill(os.getpid(), signum)
            yield batch


def straight_weights(tmp_path, epochs=1):
    trainer = make_trainer(tmp_path / "straight", epochs=epochs)
    trainer.fit()
    return weights(trainer)


def test_two_ctrl_c_between_an_update_and_the_next_batch_save_a_consistent_position(tmp_path):
    """The race: the second Ctrl-C lands after step 2's update, before batch 3. The checkpoint must
    pair those weights with position 3 (not 2), or --resume applies step 2's update twice."""
    reference = straight_weights(tmp_path)
    out = tmp_path / "b"
    trainer = make_trainer(out, epochs=1)
    trainer.train_loader = SignalBeforeBatch(trainer.train_loader, 0, 3, [signal.SIGINT, signal.SIGINT])
    with pytest.raises(TrainingInterrupted) as info:
        trainer.fit()
    assert info.value.saved
    saved = ckpt_io.read_meta(str(out / CHECKPOINT))
    assert (saved["epoch"], saved["step"]) == (0, 3)
    resumed = make_trainer(out, epochs=1)
    resumed.fit(resume=True)
    assert_same_weights(weights(resumed), reference)


def test_a_second_ctrl_c_during_the_save_does_not_lose_it_or_lie(tmp_path):
    out = tmp_path / "b"
    trainer = make_trainer(out, epochs=1)
    trainer.train_loader = SignalBeforeBatch(trainer.train_loader, 0, 2, [signal.SIGINT])
    original = trainer.save_checkpoint

    def save_while_pressed_again(*args):
        os.kill(os.getpid(), signal.SIGINT)      # the second press, while the checkpoint is written
        original(*args)
    trainer.save_checkpoint = save_while_pressed_again
    with pytest.raises(TrainingInterrupted) as info:
        trainer.fit()
    assert info.value.saved and "checkpoint saved" in str(info.value)
    saved = ckpt_io.read_meta(str(out / CHECKPOINT))
    assert (saved["epoch"], saved["step"]) == (0, 2)


def test_a_second_ctrl_c_mid_step_saves_nothing_and_names_the_checkpoint_kept(tmp_path):
    out = tmp_path / "b"
    trainer = make_trainer(out, epochs=2)
    fired = []

    def press_twice_in_forward(module, inputs, output):
        if trainer.history and not fired:     # epoch 2, first forward pass
            fired.append(True)
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
    trainer.model[1].register_forward_hook(press_twice_in_forward)
    with pytest.raises(TrainingInterrupted) as info:
        trainer.fit()
    message = str(info.value)
    assert not info.value.saved
    assert "in the middle of a step" in message and f"{out / CHECKPOINT} (after epoch 1)" in message
    assert "nothing was saved" not in message
    saved = ckpt_io.read_meta(str(out / CHECKPOINT))
    assert (saved["epoch"], saved["step"]) == (1, 0)


def test_sigterm_saves_the_partial_epoch_like_ctrl_c(tmp_path):
    reference = straight_weights(tmp_path)
    out = tmp_path / "b"
    before = signal.getsignal(signal.SIGTERM)
    trainer = make_trainer(out, epochs=1)
    trainer.train_loader = SignalBeforeBatch(trainer.train_loader, 0, 2, [signal.SIGTERM])
    with pytest.raises(TrainingInterrupted) as info:
        trainer.fit()
    assert info.value.saved and info.value.signum == signal.SIGTERM and (info.value.epoch, info.value.step) == (0, 2)
    assert "SIGTERM" in str(info.value)
    assert signal.getsignal(signal.SIGTERM) is before
    resumed = make_trainer(out, epochs=1)
    resumed.fit(resume=True)
    assert_same_weights(weights(resumed), reference)


def test_temporary_files_of_a_killed_write_are_removed_on_the_next_start(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    left = [".checkpoint.npz.k3j_9x2a.tmp", ".metrics.json.abcdefgh.tmp"]
    for name in left:
        (out / name).write_bytes(b"half a file")
    (out / "notes.tmp").write_text("mine")     # not one of ours: kept
    logged = []
    trainer = make_trainer(out, epochs=1)
    trainer.log = logged.append
    trainer.fit()
    assert not any((out / name).exists() for name in left)
    assert (out / "notes.tmp").exists()
    assert any(".checkpoint.npz.k3j_9x2a.tmp" in line for line in logged)


def test_a_second_writer_is_refused_with_the_first_ones_pid(tmp_path):
    out = tmp_path / "run"
    with OutDirLock(str(out)):
        with pytest.raises(OutDirBusy, match=rf"in use by another run: PID {os.getpid()} on host"):
            OutDirLock(str(out)).acquire()
        with pytest.raises(OutDirBusy, match=f"PID {os.getpid()}"):
            make_trainer(out, epochs=1).fit()
    assert not (out / ".lock").exists()
    make_trainer(out, epochs=1).fit()           # released: a writer may come in
    assert not (out / ".lock").exists()


def test_the_lock_of_another_process_and_a_dead_ones_stale_lock(tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from minidl.train.lock import OutDirLock; "
         f"OutDirLock({str(out)!r}).acquire(); print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": REPO})
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(OutDirBusy, match=f"PID {holder.pid} on host"):
            OutDirLock(str(out)).acquire()
    finally:
        holder.kill()                           # SIGKILL: the lock file stays behind
        holder.wait()
    assert (out / ".lock").exists()
    notes = []
    lock = OutDirLock(str(out), log=notes.append).acquire()
    lock.release()
    assert len(notes) == 1 and f"PID {holder.pid}" in notes[0] and "no longer running" in notes[0]


def test_cli_refuses_a_second_writer_and_an_interrupt_before_training_is_honest(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    make_trainer(out, epochs=1).fit()
    with OutDirLock(str(out)):
        assert main(["train", "--out", str(out), "--resume", "--no-progress"]) == 2
        assert f"in use by another run: PID {os.getpid()}" in capsys.readouterr().err

    def interrupted_setup(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(train_cmd, "setup", interrupted_setup)
    assert main(["train", "--out", str(out), "--resume", "--no-progress"]) == 130
    err = capsys.readouterr().err
    assert "before training started" in err and f"{out / CHECKPOINT} (after epoch 1) is kept" in err
    assert "nothing was saved" not in err
    assert np.isfinite(ckpt_io.load_checkpoint(str(out / CHECKPOINT)).model_state["1.weight"]).all()
