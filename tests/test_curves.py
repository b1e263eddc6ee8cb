"""curves.png: where each epoch's record is drawn (an epoch cut by the time budget at its true fraction)."""
import pytest

from minidl.train.plots import epoch_positions, plot_curves


def record(epoch, **extra):
    return dict(epoch=epoch, train_loss=1.0 / epoch, test_loss=1.2 / epoch, train_acc=1 - 0.3 / epoch,
                test_acc=1 - 0.4 / epoch, test_top5=0.99, **extra)


def test_a_partial_last_epoch_is_placed_at_its_fraction(tmp_path):
    # the budget cut the run 9 % into its last epoch (the trainer records the fraction beside the steps)
    history = [record(1), record(2), record(3), record(4, partial_epoch_steps=42, epoch_fraction=0.09)]
    assert epoch_positions(history) == pytest.approx([1, 2, 3, 3.09])
    history = [record(1), record(2), record(3), record(4), record(5, partial_epoch_steps=42, epoch_fraction=0.09)]
    assert epoch_positions(history) == pytest.approx([1, 2, 3, 4, 4.09])
    plot_curves(history, str(tmp_path / "curves.png"), title="budget")
    assert (tmp_path / "curves.png").stat().st_size > 1000


def test_whole_epochs_and_old_records_stay_at_their_epoch(tmp_path):
    assert epoch_positions([record(1), record(2)]) == [1, 2]
    old = [record(1), record(2, partial_epoch_steps=5)]          # written before epoch_fraction existed
    assert epoch_positions(old) == [1, 2]
    no_test_loss = [{k: v for k, v in r.items() if k != "test_loss"} for r in old]
    plot_curves(no_test_loss, str(tmp_path / "old.png"))
    assert (tmp_path / "old.png").stat().st_size > 1000
