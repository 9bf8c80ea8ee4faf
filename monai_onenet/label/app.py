"""The MONAI Label app that serves the OneNet bundles to 3D Slicer: inference and training from the studies' labels.

MONAI Label's own ``BundleInferTask`` and ``BundleTrainTask`` do the work; what is here is what the OneNet bundles
need on top: whole-volume (3D) results from a 2D slice model, strict weight loading, an ``UNTRAINED`` label on
random weights, HTTP errors that say what went wrong, and a training run that takes the studies' labels instead
of the MSD task folder and hands its best model back to the server.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from fastapi import HTTPException
from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.tasks.infer_v2 import InferTask
from monailabel.interfaces.tasks.strategy import Strategy
from monailabel.interfaces.tasks.train import TrainTask
from monailabel.tasks.activelearning.first import First
from monailabel.tasks.activelearning.random import Random
from monailabel.tasks.infer.bundle import BundleInferTask
from monailabel.tasks.train.bundle import BundleConstants, BundleTrainTask

import monai_onenet
from monai_onenet.label.staging import LABEL_MODELS, UNTRAINED_MARKER, is_untrained
from monai_onenet.transforms import InputCheckError

__all__ = ["OneNetLabelApp", "OneNetInferTask", "OneNetTrainTask"]

logger = logging.getLogger(__name__)


class OneNetInferTask(BundleInferTask):
    """``BundleInferTask`` for a staged OneNet bundle: a 3D label volume per study, weights loaded strictly.

    The bundles' metadata describes the 2D slices the network sees, from which MONAI Label would infer a 2D
    model; the inference config's ``volume_inferer`` segments the whole volume, so 3D Slicer is told 3D.

    Args:
        path: the staged bundle folder (``<app>/model/<name>``).
        conf: the app's ``--conf`` settings.
    """

    def __init__(self, path: str, conf: Dict[str, str], **kwargs: Any) -> None:
        super().__init__(path, conf, type="segmentation", load_strict=True, **kwargs)
        self.dimension = 3

    def info(self) -> Dict[str, Any]:
        info = super().info()
        if is_untrained(self.bundle_path):  # checked on every call: a training through MONAI Label ends it
            info["description"] = f"UNTRAINED (random weights): {info['description']}"
        return info

    def writer(self, data: Dict[str, Any], extension: Optional[str] = None, dtype: Any = None) -> Tuple[Any, Any]:
        # A label volume: uint8 unless the request asks otherwise (MONAI Label writes float32 by default).
        if dtype is None and not data.get("result_dtype"):
            dtype = "uint8"
        return super().writer(data, extension, dtype)

    def run_pre_transforms(self, data: Dict[str, Any], transforms: List) -> Dict[str, Any]:
        # MONAI's Spacingd updates every "image_*" key of a NIfTI as the image's meta dictionary, and fails on the
        # "image_path" string MONAI Label adds; the writer needs it back afterwards.
        image_path = data.pop("image_path", None)
        data = super().run_pre_transforms(data, transforms)
        if image_path is not None:
            data["image_path"] = image_path
        return data


class _OneNetTrainConstants(BundleConstants):
    def key_network(self) -> str:
        # MONAI Label loads pretrained weights into "$@network"; in the OneNet configs @network is the preset name.
        return "model"


class OneNetTrainTask(BundleTrainTask):
    """``BundleTrainTask`` for a staged OneNet bundle, training on the studies that have a final label.

    The bundle's ``train.json`` reads an MSD task folder through ``DecathlonDataset``; here the datasets become
    ``CacheDataset`` over MONAI Label's datalist with the bundle's own transforms, each run writes to its own
    ``runs/<time>`` folder (the bundle's resumable checkpoints would otherwise resume the last run and do nothing),
    and the run's best model replaces the served ``models/model.pt`` (the server reloads it on its next request).

    Args:
        path: the staged bundle folder (``<app>/model/<name>``).
        conf: the app's ``--conf`` settings.
    """

    def __init__(self, path: str, conf: Dict[str, str]) -> None:
        super().__init__(path, conf, const=_OneNetTrainConstants(), load_strict=True)
        self._run_dir: Optional[Path] = None

    def config(self) -> Dict[str, Any]:
        options = super().config()
        options.update({"max_epochs": 20, "val_split": 0.2})
        # Multi-GPU training would run multi_gpu_train.json through torchrun, outside the overrides made here.
        for key in ("multi_gpu", "gpus"):
            options.pop(key, None)
        return options

    def _load_checkpoint(self, model_pytorch: str, pretrained: bool, train_handlers: List[Dict]) -> None:
        # MONAI Label's version calls os.path.exists(None) without `pretrained`; random weights are no start either.
        if pretrained and os.path.isfile(model_pytorch) and not is_untrained(self.bundle_path):
            super()._load_checkpoint(model_pytorch, pretrained, train_handlers)

    def _update_overrides(self, overrides: Dict[str, Any]) -> Dict[str, Any]:
        epochs = int(overrides["train#trainer#max_epochs"])
        train_data = overrides.pop("train#dataset#data")
        val_data = overrides.pop("validate#dataset#data", None) or train_data
        self._run_dir = Path(self.bundle_path) / "runs" / time.strftime("%Y%m%d_%H%M%S")
        val_interval = int(self.bundle_config.get("val_interval", 1))
        overrides.update(
            {
                "train#dataset": _cached(train_data, "@train#preprocessing"),
                "validate#dataset": _cached(val_data, "@validate#preprocessing"),
                # The bundle's initialize checks the MSD task folder, which a MONAI Label datastore does not have.
                "initialize": ["$monai.utils.set_determinism(seed=@seed)"],
                "output_dir": str(self._run_dir),
                "epochs": epochs,
                "val_interval": max(1, min(val_interval, epochs)),
            }
        )
        return overrides

    def __call__(self, request: Dict[str, Any], datastore: Any) -> Dict[str, Any]:
        # Slicer sends every row of the config panel, run_id "" among them: "" would run the whole config.
        request = {**request, "run_id": request.get("run_id") or "training", "multi_gpu": False}
        request["force_multi_gpu"] = False
        if not datastore.datalist():
            # Training runs in MONAI Label's subprocess: this message ends up in the task's status details.
            raise ValueError("no study has a final label yet: submit a label in 3D Slicer, then train.")
        result = super().__call__(request, datastore)
        best = self._run_dir / "models" / "model.pt" if self._run_dir else None
        if best is None or not best.is_file():
            raise RuntimeError(f"training wrote no model in {self._run_dir}; its log says why.")
        # Copied, not moved: the run folder keeps its model, and the served file changes in one step.
        served = Path(self.bundle_path) / "models" / "model.pt"
        partial = served.with_suffix(".pt.partial")
        shutil.copy2(best, partial)
        os.replace(partial, served)
        (Path(self.bundle_path) / "models" / UNTRAINED_MARKER).unlink(missing_ok=True)
        logger.info(f"{self.bundle_path}: now serving the model trained in {self._run_dir}")
        return result


def _cached(data: List[Dict], transform: str) -> Dict[str, Any]:
    return {"_target_": "CacheDataset", "data": data, "transform": transform, "cache_rate": 1.0, "num_workers": 0}


class OneNetLabelApp(MONAILabelApp):
    """MONAI Label app serving the OneNet bundles staged under ``<app_dir>/model/`` (see ``python -m
    monai_onenet.label``, which stages them and starts the server).

    ``--conf models onenet_heart,onenet_brain`` picks the models; ``--conf skip_trainers true`` serves inference
    only. Requests MONAI Label would answer with a bare 500 get a status and a message: an unknown model or image
    id is 404, an image the model cannot read (corrupt file, wrong number of channels) 422.
    """

    def __init__(self, app_dir: str, studies: str, conf: Dict[str, str]) -> None:
        names = [n.strip() for n in conf.get("models", ",".join(LABEL_MODELS)).split(",") if n.strip()]
        unknown = sorted(set(names) - set(LABEL_MODELS))
        if unknown:
            raise ValueError(f"unknown models {unknown}; the OneNet app serves {', '.join(LABEL_MODELS)}.")
        self.bundles = {name: os.path.join(app_dir, "model", name) for name in names}
        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name="OneNet",
            description="OneNet segmentation (monai_onenet bundles): left atrium (MSD Heart), brain tumour (MSD Brain)",
            version=monai_onenet.__version__,
        )

    def init_infers(self) -> Dict[str, InferTask]:
        infers = {}
        for name, path in self.bundles.items():
            task = OneNetInferTask(path, self.conf)
            if not task.is_valid():
                raise RuntimeError(f"{path} is not a staged bundle; start the server with python -m monai_onenet.label")
            infers[name] = task
        return infers

    def init_trainers(self) -> Dict[str, TrainTask]:
        if self.conf.get("skip_trainers", "false").lower() == "true":
            return {}
        return {name: OneNetTrainTask(path, self.conf) for name, path in self.bundles.items()}

    def init_strategies(self) -> Dict[str, Strategy]:
        return {"random": Random(), "first": First()}

    def infer(self, request: Dict[str, Any], datastore: Any = None) -> Dict[str, Any]:
        model = request.get("model")
        if model not in self._infers:
            raise HTTPException(404, f"no model {model!r}; this server has {', '.join(self._infers)}.")
        image = request.get("image")
        if isinstance(image, str) and not os.path.exists(image):
            uri = (datastore or self.datastore()).get_image_uri(image)
            if not uri or not os.path.exists(uri):
                raise HTTPException(404, f"no image {image!r} in the studies folder {self.studies}.")
        try:
            return super().infer(request, datastore)
        except Exception as error:
            refusal = _input_check(error)
            if refusal is None:  # a fault of the server (memory, a bug) stays a 500
                raise
            raise HTTPException(422, f"{model} cannot segment image {image!r}: {refusal}") from error


def _input_check(error: BaseException) -> Optional[InputCheckError]:
    """The bundle's refusal of the input (corrupt file, wrong channels) behind ``error``, if that is its cause.

    MONAI wraps a transform's error in ``RuntimeError("applying transform ...")``; the whole chain is searched.
    """
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, InputCheckError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None
