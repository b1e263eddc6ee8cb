"""minidl.train: the generic training loop and what surrounds it (nothing model-specific).

    from minidl.train import Trainer, Schedule
    trainer = Trainer(model, optimizer, train_loader, test_loader, epochs=5, num_classes=10, out_dir="runs/x")
    metrics = trainer.fit()

- ``trainer``: the Trainer, ``evaluate``, the learning-rate ``Schedule``, interrupts and resumption;
- ``checkpoint``: the checkpoint file format (.npz, no pickle) and atomic writes;
- ``monitor``: the per-layer statistics (``LayerMonitor``), ``health``: plain-words warnings from them;
- ``plots``, ``diagnostic_plots``: the figures a run writes.
"""
from .checkpoint import CheckpointError
from .health import HealthCheck
from .monitor import LayerMonitor
from .trainer import (CHECKPOINT, METRICS, EvalResult, Schedule, Trainer, TrainingDiverged, TrainingInterrupted,
                      evaluate)

__all__ = ["CHECKPOINT", "METRICS", "CheckpointError", "EvalResult", "HealthCheck", "LayerMonitor", "Schedule",
           "Trainer", "TrainingDiverged", "TrainingInterrupted", "evaluate"]
