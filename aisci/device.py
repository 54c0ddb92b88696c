"""The torch device a GPU-class stage runs on, chosen once and logged with the reason."""

from __future__ import annotations

import logging
import os
from typing import Any

from aisci.errors import InputError

log = logging.getLogger(__name__)


def pick_device(requested: str = "auto") -> Any:
    """Choose the torch device and say why in the log.

    ``auto`` takes ``cuda`` when torch sees a CUDA device (Slurm sets CUDA_VISIBLE_DEVICES for a
    job granted a GPU), else the CPU; a job granted a GPU that torch cannot use is logged as such.
    """
    import torch

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(requested)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError("--device cuda requested but torch sees no CUDA device")
        name = torch.cuda.get_device_name(device)
        log.info("device: %s (%s), CUDA_VISIBLE_DEVICES=%s", device, name, visible)
    else:
        why = "no CUDA device visible to torch" if visible is None else "torch cannot use the granted device(s)"
        log.info("device: cpu (%s), CUDA_VISIBLE_DEVICES=%s", why, visible)
    return device
