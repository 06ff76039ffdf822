"""The main job: config → data → model → trainer → run folder (what ``pfdtrain train`` runs).

Example:
    >>> result = run_training(TrainingConfig())
    >>> result.run_dir, result.test_metrics["accuracy"]
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from torch.utils.data import DataLoader

from pfdtrain.config.training_config import ConfigError, TrainingConfig
from pfdtrain.data import DataBundle, build_dataloaders, ensure_synthetic_dataset
from pfdtrain.evaluation.metrics import classification_report
from pfdtrain.evaluation.plots import plot_history
from pfdtrain.models import build_model
from pfdtrain.training.checkpoint import (CheckpointError, load_checkpoint_file,
                                          newest_good_checkpoint)
from pfdtrain.training.cnn_callbacks import (Callback, DashboardEventWriter, EarlyStoppingCallback,
                                             GradientMonitor, LearningRateMonitor,
                                             ModelCheckpointCallback, TimingCallback)
from pfdtrain.training.cnn_trainer import CNNTrainer
from pfdtrain.training.logging_callbacks import CSVLogger, TensorBoardLogger
from pfdtrain.training.registry import trainer_class
from pfdtrain.training.distributed import (DistributedContext, barrier, broadcast_object,
                                           init_distributed, process_device, wrap_model)
from pfdtrain.training.run_folder import (RunFolderLock, claim_run_dir, clear_run_files,
                                          has_checkpoints, plan_run_dir, remove_temp_files)
from pfdtrain.training.optimization import (PER_STEP_SCHEDULERS, create_optimizer,
                                            create_scheduler, optimizer_steps_per_epoch)
from pfdtrain.utils.device import resolve_device
from pfdtrain.utils.events import EVENTS_FILE
from pfdtrain.utils.io import write_json
from pfdtrain.utils.logging import attach_log_file, get_logger, setup_logging
from pfdtrain.utils.reproducibility import set_seed

logger = get_logger(__name__)


@dataclass
class RunResult:
    """What a finished run produced."""

    run_dir: Path
    history: dict[str, list[float]]
    test_metrics: Optional[dict[str, Any]]
    trainer: CNNTrainer
    data: DataBundle


def build_callbacks(config: TrainingConfig, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    run_dir: Optional[Path], has_validation: bool) -> list[Callback]:
    """The §2.4 standard set, as the ``callbacks:`` and ``checkpoint:`` sections ask.

    Order matters: timing first (it adds ``epoch_time`` to the logs the others see), the
    checkpoint writer last of this set (its ``final_model.pth`` holds the restored best
    weights). ``run_training``'s ``extra_callbacks`` (a sweep's pruning callback) come after
    it; that is harmless, since checkpoints are written in the later ``on_checkpoint`` step,
    after every callback's ``on_epoch_end``. The ``logging:`` section adds TensorBoard and
    CSV logs.
    """
    cb_cfg, ck_cfg = config.callbacks, config.checkpoint
    for section, monitor, active in (("callbacks.early_stopping", cb_cfg.early_stopping.monitor,
                                      cb_cfg.early_stopping.enabled),
                                     ("checkpoint", ck_cfg.monitor,
                                      ck_cfg.enabled and run_dir is not None),
                                     ("scheduler", config.scheduler.monitor,
                                      config.scheduler.name == "plateau")):
        if active and monitor.startswith("val_") and not has_validation:
            # Never advise a value that is already set: with val_fraction > 0 the split
            # itself produced no validation windows.
            fix = ("set data.val_fraction > 0" if config.data.val_fraction <= 0 else
                   f"data.val_fraction is {config.data.val_fraction:g} but the split left no "
                   f"validation part at least one window long: use longer recordings, a "
                   f"smaller data.window_length or data.split_gap, or data.val_groups")
            raise ConfigError(f"{section}.monitor = {monitor!r} needs a validation split, but this "
                              f"dataset has none; {fix}; or monitor a train_* key, or disable "
                              f"it.")
    callbacks: list[Callback] = []
    if cb_cfg.timing:
        callbacks.append(TimingCallback())
    if cb_cfg.lr_monitor.enabled:
        callbacks.append(LearningRateMonitor(optimizer, verbose=cb_cfg.lr_monitor.verbose))
    if cb_cfg.gradient_monitor.enabled:
        callbacks.append(GradientMonitor(model, log_interval=cb_cfg.gradient_monitor.log_interval,
                                         alert_threshold=cb_cfg.gradient_monitor.alert_threshold))
    es = cb_cfg.early_stopping
    if es.enabled:
        callbacks.append(EarlyStoppingCallback(monitor=es.monitor, patience=es.patience,
                                               mode=es.mode, min_delta=es.min_delta,
                                               restore_best_weights=es.restore_best_weights))
    if run_dir is not None and cb_cfg.events:
        callbacks.append(DashboardEventWriter(run_dir / EVENTS_FILE))
    # after timing and the gradient monitor: their epoch_time and gradient_norm are logged
    if run_dir is not None and config.logging.tensorboard:
        callbacks.append(TensorBoardLogger(run_dir / "tensorboard"))
    if run_dir is not None and config.logging.csv:
        callbacks.append(CSVLogger(run_dir / "metrics.csv"))
    if run_dir is not None and ck_cfg.enabled:
        callbacks.append(ModelCheckpointCallback(
            run_dir / "checkpoints", model, optimizer, monitor=ck_cfg.monitor, mode=ck_cfg.mode,
            save_best_only=ck_cfg.save_best_only, every_n_epochs=ck_cfg.every_n_epochs or None,
            every_n_steps=ck_cfg.every_n_steps or None))
    return callbacks


def build_criterion(config: TrainingConfig, data: DataBundle
                    ) -> tuple[torch.nn.Module, Optional[torch.nn.Module]]:
    """``(criterion on logits, embedding criterion or None)`` from the ``loss:`` section.

    ``class_weights: balanced`` weighs classes by their frequency in the training split
    (never the validation or test splits).
    """
    from pfdtrain.training.cnn_losses import class_weights_from_labels, create_criterion

    lc = config.loss
    weights = None
    if lc.class_weights == "balanced":
        labels = data.train_loader.dataset.labels
        # Few labels (data.label_fraction): weights from the windows that keep their label.
        weights = class_weights_from_labels(labels[labels >= 0], data.num_classes)
    if lc.name == "label_smoothing":
        return create_criterion("label_smoothing", smoothing=lc.smoothing, weight=weights), None
    if lc.name == "focal":
        return create_criterion("focal", gamma=lc.gamma, alpha=weights), None
    criterion = create_criterion("ce", weight=weights)
    if lc.name == "supcon":
        return criterion, create_criterion("supcon", temperature=lc.temperature,
                                           base_temperature=lc.base_temperature)
    return criterion, None


def build_trainer(config: TrainingConfig, data: DataBundle, device: torch.device,
                  run_dir: Optional[Path] = None, progress_bar: Optional[bool] = None,
                  ctx: Optional[DistributedContext] = None,
                  extra_callbacks: Sequence[Callback] = ()) -> CNNTrainer:
    """Model, optimizer, scheduler, loss, callbacks and the trainer the config names.

    ``extra_callbacks`` run after the standard set (e.g. a sweep's pruning callback, which
    may stop the run after an epoch like early stopping does).

    Under DDP the trainer gets the model wrapped in ``DistributedDataParallel``; callbacks
    and checkpoints keep using the unwrapped one.
    """
    model = build_model(config.model.name, num_classes=data.num_classes,
                        dropout=config.model.dropout, **_model_params(config, data))
    optimizer = create_optimizer(model, config.optimizer)
    steps = optimizer_steps_per_epoch(len(data.train_loader), config.gradient_accumulation_steps)
    scheduler = create_scheduler(optimizer, config.scheduler, config.num_epochs, steps)
    callbacks = build_callbacks(config, model, optimizer, run_dir, data.val_loader is not None)
    callbacks += list(extra_callbacks)
    trainer_cls = trainer_class(config.trainer)
    trainer_cls.check_config(config)
    _check_transform_and_physics(config)
    criterion, embedding_criterion = build_criterion(config, data)
    common: dict[str, Any] = dict(
        model=wrap_model(model, ctx or DistributedContext(), device,
                         config.distributed.sync_batchnorm),
        train_loader=data.train_loader,
        val_loader=data.val_loader,
        optimizer=optimizer,
        lr_scheduler=scheduler,
        criterion=criterion,
        embedding_criterion=embedding_criterion,
        embedding_weight=config.loss.supcon_weight,
        device=device,
        mixed_precision=config.mixed_precision.enabled,
        amp_dtype=_amp_dtype(config.mixed_precision.dtype),
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        max_grad_norm=config.max_grad_norm,
        scheduler_interval="step" if config.scheduler.name in PER_STEP_SCHEDULERS else "epoch",
        plateau_monitor=config.scheduler.monitor,
        callbacks=callbacks,
        log_interval=config.log_interval,
        progress_bar=progress_bar,
        config=config,
        metadata={"class_names": list(data.class_names), "dataset_hash": data.content_hash,
                  "sampling_rate": float(data.sampling_rate), "input_length": data.input_length,
                  "dataset_path": str(data.path), "split": data.split_info,
                  # The evaluation team's keys for the model input: evaluate and predict
                  # rebuild the transform from "transform"; windows are cut at window_length.
                  "transform": data.transform, "window_length": config.data.window_length},
    )
    return trainer_cls.from_config(config, data, common)


def _check_transform_and_physics(config: TrainingConfig) -> None:
    """Refuse a physics-informed model that would read a transformed input as a time signal
    (``trainer: pinn`` refuses it in its own ``check_config``)."""
    if config.data.transform != "raw" and config.model.name == "hybrid_pinn":
        raise ConfigError(f"model.name: hybrid_pinn computes band energies of the model input "
                          f"as a time signal at the sampling rate, but data.transform = "
                          f"{config.data.transform!r} feeds it another quantity; use "
                          f"data.transform: raw with it, or another model")


def _model_params(config: TrainingConfig, data: DataBundle) -> dict[str, Any]:
    """The model's extra constructor arguments; a physics-informed model learns the rate."""
    params = dict(config.model.params)
    if config.model.name == "hybrid_pinn":
        params.setdefault("sampling_rate", float(data.sampling_rate))
    return params


def _amp_dtype(name: str) -> Optional[torch.dtype]:
    return {"auto": None, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def run_training(config: TrainingConfig, progress_bar: Optional[bool] = None,
                 resume_dir: Optional[Path] = None, quiet: bool = False,
                 extra_callbacks: Sequence[Callback] = ()) -> RunResult:
    """Train as configured, evaluate once on the test split, write the run folder.

    The run folder holds ``config.yaml``, ``history.json``, ``test_metrics.json``,
    ``events.jsonl``, ``train.log`` and ``checkpoints/``. The test split is used only here,
    after training, never for selection. With ``resume_dir`` the run in that folder
    continues from its newest good checkpoint (or starts again from its config when the
    earlier attempt left none).

    Nothing is written into a new run folder before the config, the data and the model
    set-up are validated; from then on the folder is locked against a second process.
    With ``quiet`` the console shows warnings and errors only (``train.log`` keeps every
    line): a benchmark prints one progress line per run instead. ``extra_callbacks`` join
    the standard callbacks of the config (``pfdtrain sweep`` passes its pruning callback).
    """
    started = time.perf_counter()
    dc = config.distributed
    ctx = init_distributed(config.device, dc.backend, dc.timeout_minutes)
    set_seed(config.seed, config.deterministic)
    device = process_device(ctx, resolve_device(config.device))
    # Rank 0 names and owns the run folder; the other ranks write nothing and log only
    # warnings and errors. Log lines are held until the folder exists.
    setup_logging(quiet=quiet or not ctx.is_main, hold_for_file=ctx.is_main)
    run_dir = None
    if ctx.is_main:
        run_dir = resume_dir if resume_dir is not None else plan_run_dir(config)
    run_dir = Path(broadcast_object(str(run_dir)))

    if ctx.enabled and config.data.source == "synthetic":
        if ctx.is_main:
            ensure_synthetic_dataset(config)  # generated once, by rank 0
        barrier()
    data = build_dataloaders(config, with_metadata=trainer_class(config.trainer).needs_metadata,
                             num_replicas=ctx.world_size, rank=ctx.rank,
                             with_target=trainer_class(config.trainer).needs_target)
    logger.info(f"Data: {data.path} ({data.num_classes} classes, "
                f"{len(data.train_loader.dataset)} train / "
                f"{len(data.val_loader.dataset) if data.val_loader else 0} val / "
                f"{len(data.test_loader.dataset) if data.test_loader else 0} test windows of "
                f"{data.input_length} samples at {data.sampling_rate:g} Hz)")
    trainer = build_trainer(config, data, device, run_dir if ctx.is_main else None,
                            progress_bar if ctx.is_main else False, ctx, extra_callbacks)

    lock = RunFolderLock(run_dir) if ctx.is_main else None
    try:
        if lock is not None:
            lock.acquire()
            resume_from = _open_run_dir(run_dir, config, resumed=resume_dir is not None)
        else:
            resume_from = None
        resume_from = broadcast_object(resume_from)
        if resume_from is not None:
            checkpoint = trainer.load_checkpoint(Path(resume_from))
            saved_hash = checkpoint.get("metadata", {}).get("dataset_hash")
            if saved_hash and saved_hash != data.content_hash:
                raise CheckpointError(f"{resume_from} was trained on dataset {saved_hash[:12]}, "
                                      f"but the config now gives {data.content_hash[:12]}; "
                                      f"resume with the same data")
        history = trainer.fit(config.num_epochs)
        test_metrics = None
        if ctx.is_main:
            write_json(run_dir / "history.json", history)
            plot_history(history, run_dir / "history.png")
            test_metrics = _evaluate_test_split(trainer, data, run_dir)
            # the dashboard's evaluation_complete, TensorBoard's hparams and confusion matrix
            trainer.callbacks.on_test_end({**(test_metrics or {}),
                                           "metrics_file": "test_metrics.json"}
                                          if test_metrics else {})
    finally:
        if lock is not None:
            lock.release()
    logger.info(f"Finished in {time.perf_counter() - started:.1f} s; results in {run_dir}")
    return RunResult(run_dir, history, test_metrics, trainer, data)


def _open_run_dir(run_dir: Path, config: TrainingConfig, resumed: bool) -> Optional[str]:
    """Prepare the locked run folder; the checkpoint to resume from, or None for a fresh start."""
    resume_from = None
    if resumed:
        if has_checkpoints(run_dir):
            remove_temp_files(run_dir)
            resume_from = str(find_resume_checkpoint(run_dir))
        else:
            clear_run_files(run_dir, keep_config=True)  # temp files included
    else:
        claim_run_dir(run_dir)
    config.to_yaml(run_dir / "config.yaml")  # a resume may have changed num_epochs
    attach_log_file(run_dir / "train.log")
    logger.info(f"Run folder: {run_dir}")
    if resumed and resume_from is None:
        logger.warning(f"{run_dir} holds no checkpoint (its earlier attempt stopped before the "
                       f"first one); starting the run again from its config.yaml")
    return resume_from


def _evaluate_test_split(trainer: CNNTrainer, data: DataBundle, run_dir: Path
                         ) -> Optional[dict[str, Any]]:
    """Once, after training, on the whole test split (rank 0 alone under DDP)."""
    if data.test_loader is None:
        return None
    loader = DataLoader(data.test_loader.dataset, batch_size=data.test_loader.batch_size)
    metrics, logits, targets = trainer.evaluate_with_predictions(loader, "test_", reduce=False)
    report = classification_report(targets.numpy(), logits.argmax(dim=1).numpy(),
                                   data.class_names)
    test_metrics = {"test_loss": metrics["test_loss"], **report,
                    "dataset": str(data.path), "dataset_hash": data.content_hash,
                    "split": {k: v for k, v in data.split_info.items() if k != "ids"},
                    "epochs_trained": trainer.epochs_completed}
    write_json(run_dir / "test_metrics.json", test_metrics)
    logger.info(f"Test: Loss: {metrics['test_loss']:.4f}, Acc: {report['accuracy']:.2f}%, "
                f"Macro F1: {report['macro_f1']:.4f} ({report['num_samples']} windows)")
    return test_metrics


def find_resume_checkpoint(run_dir: Path) -> Path:
    """``checkpoints/latest_model.pth``, or the newest good checkpoint when it is damaged."""
    folder = run_dir / "checkpoints"
    latest = folder / "latest_model.pth"
    try:
        load_checkpoint_file(latest)
        return latest
    except CheckpointError as exc:
        fallback = newest_good_checkpoint(folder, exclude=latest)
        if fallback is None:
            raise CheckpointError(f"cannot resume {run_dir}: {exc}") from None
        logger.warning(f"{exc} Resuming from {fallback} instead.")
        return fallback


# Schedules whose shape depends on the run's planned length.
FIXED_LENGTH_SCHEDULERS = frozenset({"cosine", "cosine_warmup", "onecycle"})


def resume_training(run_dir: Path, num_epochs: Optional[int] = None,
                    progress_bar: Optional[bool] = None, quiet: bool = False) -> RunResult:
    """Continue the run in ``run_dir`` (its ``config.yaml``) up to ``num_epochs`` in total.

    ``config.yaml`` is rewritten with the new ``num_epochs`` once the folder is locked (a
    second process resuming the same folder is refused before it changes anything).
    """
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"{run_dir} is not a pfdtrain run folder (no config.yaml); pass the "
                          f"folder that `pfdtrain train` created, e.g. runs/<name>")
    config = TrainingConfig.from_yaml(run_dir / "config.yaml")
    if num_epochs is not None and num_epochs != config.num_epochs:
        if config.scheduler.name in FIXED_LENGTH_SCHEDULERS:
            raise ConfigError(f"the run's '{config.scheduler.name}' LR schedule was planned for "
                              f"{config.num_epochs} epochs and cannot be stretched to {num_epochs} "
                              f"without changing the learning rates already used; resume without "
                              f"--epochs, or start a new run")
        config.num_epochs = num_epochs
    return run_training(config, progress_bar=progress_bar, resume_dir=run_dir, quiet=quiet)
