"""The optional torch layer: the paper's ResNet-18 classifier, real-defect injection, training.

Needs the ``[torch]`` extra (``pip install "ispad-core[torch]"``); the rest of ``ispad_core``
never imports torch.

- :func:`resnet18_classifier` -- ResNet-18 with torchvision's parameter names, dropout + 2-way
  head, ImageNet weights from a local file (:func:`load_torchvision_state_dict`).
- :func:`classifier` -- the paper's five backbones (:data:`BACKBONES`: ResNet-18/50,
  EfficientNet-B0/B4, ConvNeXt-Tiny) with torchvision's names, or any importable factory.
- :func:`save_model`, :func:`load_model` -- the model file: weights plus what is needed to use
  them (patch size, preprocessing, threshold, validation report, provenance).
- :class:`RealTransform` -- the training transform of a real defect (augment, then centre crop).
- :class:`InjectionDataset` -- real defects injected into a balanced synthetic stream with
  probability ``p_inj`` in ``[1/B, 0.25]`` (equation 1), reproducible per ``(seed, epoch, i)``.
- :func:`train`, :func:`evaluate`, :func:`predict` -- the paper's recipe (SGD, cosine warm
  restarts, mixed precision, early stopping, best-val-loss checkpoint), DDP-aware.
- :func:`train_detector` -- stream + real-defect folder + validation set -> a model file
  (``ispad train``): nested selection, recipes, threshold, report, resume.
- :func:`preprocess_batch` -- brightness factor and 3 x 3 Gaussian smoothing on the device.
- :func:`measure_throughput` -- the paper's timing protocol.
- :func:`pretrain` -- in-domain self-supervised pretraining of a backbone on fault-free scans
  (masked-patch reconstruction; ``ispad pretrain``), written in torchvision's layout for ``weights``.
- :func:`calibrate` -- a per-design threshold at a stated false-alarm rate from fault-free scans
  of that design, stored in the model file (``ispad calibrate``, ``inspect --design``).
"""

from __future__ import annotations

try:
    import torch  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        'ispad_core.nn needs PyTorch, which is an optional extra: pip install "ispad-core[torch]"'
    ) from exc

from ispad_core.nn.backbones import BACKBONES, classifier
from ispad_core.nn.calibration import Calibration, calibrate
from ispad_core.nn.detector import DetectorResult, Recipe, train_detector
from ispad_core.nn.export import export_onnx
from ispad_core.nn.inference import InferenceSettings, Inspection, InspectionReport, inspect, inspect_files, predict_windows
from ispad_core.nn.injection import InjectionDataset, InjectionPlan, NegativeDataset, injection_bounds
from ispad_core.nn.model import ResNet18, load_torchvision_state_dict, resnet18_classifier
from ispad_core.nn.modelfile import load_model, save_model
from ispad_core.nn.pretrain import PretrainResult, pretrain
from ispad_core.nn.preprocessing import PREPROCESS_PRESETS, Preprocess, preprocess_batch
from ispad_core.nn.throughput import Throughput, measure_throughput
from ispad_core.nn.settings import ContrastCurriculum, TrainSettings
from ispad_core.nn.training import EpochRecord, Prediction, TrainResult, evaluate, predict, train
from ispad_core.nn.transform import RealTransform

__all__ = [
    "BACKBONES",
    "Calibration",
    "DetectorResult",
    "PREPROCESS_PRESETS",
    "EpochRecord",
    "InjectionDataset",
    "NegativeDataset",
    "InferenceSettings",
    "InjectionPlan",
    "Inspection",
    "InspectionReport",
    "Prediction",
    "Preprocess",
    "PretrainResult",
    "RealTransform",
    "Recipe",
    "ResNet18",
    "Throughput",
    "TrainResult",
    "TrainSettings",
    "ContrastCurriculum",
    "calibrate",
    "classifier",
    "evaluate",
    "export_onnx",
    "injection_bounds",
    "inspect",
    "inspect_files",
    "load_model",
    "load_torchvision_state_dict",
    "measure_throughput",
    "predict",
    "predict_windows",
    "preprocess_batch",
    "pretrain",
    "resnet18_classifier",
    "save_model",
    "train",
    "train_detector",
]
