"""Resume an interrupted training from the last epoch checkpoint in its output folder."""

from __future__ import annotations

import glob
import os
import re
import zipfile
from typing import Dict, List, Optional

import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, DiskSaver
from monai.handlers import CheckpointLoader, CheckpointSaver

__all__ = ["ResumableCheckpoint", "epoch_checkpoints", "latest_checkpoint", "require_checkpoint"]

_EPOCH = re.compile(r"epoch=(\d+)")


def _epoch(path: str) -> Optional[int]:
    match = _EPOCH.search(os.path.basename(path))
    return int(match.group(1)) if match else None


def epoch_checkpoints(ckpt_dir: str, pattern: str = "checkpoint_epoch=*.pt") -> List[str]:
    """The epoch checkpoints in ``ckpt_dir``, newest (highest epoch number) first."""
    paths = [p for p in glob.glob(os.path.join(glob.escape(ckpt_dir), pattern)) if _epoch(p) is not None]
    return sorted(paths, key=_epoch, reverse=True)


def latest_checkpoint(ckpt_dir: str, pattern: str = "checkpoint_epoch=*.pt") -> Optional[str]:
    """The checkpoint with the highest epoch number in ``ckpt_dir``, or None."""
    paths = epoch_checkpoints(ckpt_dir, pattern)
    return paths[0] if paths else None


def _is_intact(path: str) -> bool:
    """Whether ``path`` is a whole ``torch.save`` archive (a zip file whose every member passes its CRC check).

    Decided by the file, not by the error ``torch.load`` gave: a readable checkpoint that ``torch.load`` refuses
    (a type ``weights_only`` does not allow) must stop the run, not be set aside as if it were cut short.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (zipfile.BadZipFile, OSError, EOFError):
        return False


class _BestScore:
    """The best-model saver's record of its best score, as an object a checkpoint can hold."""

    def __init__(self, saver: CheckpointSaver) -> None:
        self.saver = saver

    def state_dict(self) -> Dict:
        # MONAI's CheckpointSaver restores this record (load_state_dict) but only its ignite Checkpoint exports it.
        return self.saver._key_metric_checkpoint.state_dict()

    def load_state_dict(self, state: Dict) -> None:
        self.saver.load_state_dict(state)


class ResumableCheckpoint:
    """Save the training state after every epoch and, on ``STARTED``, resume from the latest such checkpoint.

    The trainer itself is added to ``save_dict`` when the handler is attached (a config cannot name the
    trainer inside its own handler list), so the checkpoint restores epoch and iteration along with the model,
    optimizer and scheduler: training continues with the next epoch and stops at ``max_epochs``. The
    checkpoint is written after every other end-of-epoch handler (validation, scheduler step, curves), so it
    holds the complete state of the finished epoch. Saving is ignite's ``Checkpoint`` with an atomic
    ``DiskSaver`` (``checkpoint_epoch=N.pt``, written to a temporary file and renamed, so a run killed while
    saving leaves the previous checkpoint rather than a truncated one; MONAI's ``CheckpointSaver`` writes in
    place). Loading is MONAI's ``CheckpointLoader``; a checkpoint that cannot be read (cut short by a full
    disk, say) is set aside as ``*.unreadable`` with a warning, and the next older one is tried. A fresh
    ``ckpt_dir`` starts from scratch.

    Args:
        ckpt_dir: where the epoch checkpoints are written and looked for.
        save_dict: objects to save and restore, e.g. ``{"model": net, "optimizer": opt}``.
        resume: False trains from scratch even when checkpoints exist (they are then overwritten).
        save: False only resumes (the non-zero ranks of a distributed run, where rank 0 saves).
        best_saver: the evaluator's best-model ``CheckpointSaver``; its record of the best score is saved
            and restored too, so that after a restart a worse model does not replace the best one.
        map_location: passed to ``torch.load``; by default the checkpoint loads onto the CPU and moves with the
            model, so a CUDA checkpoint resumes on a CPU-only machine.
    """

    def __init__(
        self,
        ckpt_dir: str,
        save_dict: Dict,
        resume: bool = True,
        save: bool = True,
        best_saver: Optional[CheckpointSaver] = None,
        map_location: Optional[object] = None,
    ) -> None:
        self.ckpt_dir = ckpt_dir
        self.save_dict = dict(save_dict)
        if best_saver is not None:
            self.save_dict["best_score"] = _BestScore(best_saver)
        self.resume = resume
        self.save = save
        self.map_location = map_location if map_location is not None else torch.device("cpu")

    def attach(self, engine: Engine) -> None:
        objects = dict(self.save_dict, trainer=engine)
        engine.add_event_handler(Events.STARTED, self._resume, objects)
        if self.save:
            saver = Checkpoint(
                to_save=objects,
                save_handler=DiskSaver(self.ckpt_dir, require_empty=False, atomic=True),
                score_function=lambda trainer: trainer.state.epoch,
                score_name="epoch",
                n_saved=1,
            )

            # Added when the first run starts, i.e. after every handler the trainer was built with (once: a
            # second run() of the same trainer must not save twice per epoch).
            def add_saving(_: Engine) -> None:
                if not engine.has_event_handler(saver, Events.EPOCH_COMPLETED):
                    engine.add_event_handler(Events.EPOCH_COMPLETED, saver)
                    engine.add_event_handler(Events.EPOCH_COMPLETED, self._prune)

            engine.add_event_handler(Events.STARTED, add_saving)

    def _prune(self, engine: Engine) -> None:
        # The saver only removes files it wrote itself: after a resume, the checkpoint it resumed from would stay.
        # Only once this epoch's checkpoint is on disk.
        current = os.path.join(self.ckpt_dir, f"checkpoint_epoch={engine.state.epoch}.pt")
        if not os.path.isfile(current):
            return
        for path in epoch_checkpoints(self.ckpt_dir):
            epoch = _epoch(path)
            # Without resume, a previous run's later epochs go too: a later resume must not pick them up.
            if epoch < engine.state.epoch or (not self.resume and epoch > engine.state.epoch):
                os.remove(path)

    def _resume(self, engine: Engine, objects: Dict) -> None:
        paths = epoch_checkpoints(self.ckpt_dir) if self.resume else []
        for path in paths:
            try:
                self._load(engine, objects, path)
            except FileNotFoundError:
                continue  # set aside by the saving rank meanwhile (distributed runs)
            except Exception as error:
                if _is_intact(path):
                    raise
                engine.logger.warning(f"skipping {path}: it is cut short or corrupt ({type(error).__name__}: {error})")
                if self.save:
                    # Set aside, not deleted, so that it can be inspected; only the saving rank touches files.
                    os.replace(path, path + ".unreadable")
                continue
            engine.logger.info(f"resumed from {path}: epoch {engine.state.epoch} of {engine.state.max_epochs} done")
            return
        if paths:
            raise RuntimeError(
                f"no checkpoint in {self.ckpt_dir} can be read ({', '.join(map(os.path.basename, paths))} are "
                "truncated or not checkpoints); they are set aside as *.unreadable. Run again to train from "
                "scratch, or give the run another --output_dir."
            )

    def _load(self, engine: Engine, objects: Dict, path: str) -> None:
        try:
            CheckpointLoader(load_path=path, load_dict=objects, map_location=self.map_location)(engine)
        except RuntimeError as error:
            if "size mismatch" not in str(error) and "Missing key" not in str(error):
                raise
            raise RuntimeError(
                f"{path} holds a run of a different network (its weights do not fit this one: "
                f"{str(error).splitlines()[1].strip() if len(str(error).splitlines()) > 1 else error}). Training "
                f"resumes from the checkpoint in {self.ckpt_dir}: give this run its own --output_dir, or delete "
                "that folder to start over."
            ) from error


def require_checkpoint(path: str) -> str:
    """Return ``path`` if it is a file; otherwise raise a ``FileNotFoundError`` that says how to get one."""
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"no trained model at {path}. Train first with the same --output_dir (training writes "
            "<output_dir>/models/model.pt), or pass --ckpt_path to a checkpoint."
        )
    return path
