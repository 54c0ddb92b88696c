"""SpliceAI-10k (Jaganathan et al., Cell 2019) in PyTorch, computed in 'valid' mode.

The Keras original pads every dilated convolution ('same') and crops 5,000 positions from each end
at the very end. Its receptive field is exactly 5,000 nt each side, so the padded values never
reach a kept output: computing each convolution only where all its inputs exist ('valid') gives
the same numbers while skipping the work on positions that are cropped anyway. Valid mode is also
what lets the scorer recompute only the part of a window that a variant changes (`ResidualUnit`
works on any slab whose length exceeds its `crop`).

Weight loading lives in `aisci.splice.weights`; this module only defines the computation.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

CHANNELS = 32
# Kernel widths and dilation rates of the 16 residual units of SpliceAI-10k.
WIDTHS = (11,) * 4 + (11,) * 4 + (21,) * 4 + (41,) * 4
DILATIONS = (1,) * 4 + (4,) * 4 + (10,) * 4 + (25,) * 4
# A dense 1x1 convolution taps the residual stream after every 4th unit into the skip sum.
DENSE_AFTER = (4, 8, 12, 16)
FLANK = sum(d * (w - 1) for w, d in zip(WIDTHS, DILATIONS))  # 5,000 nt each side
CONTEXT = 2 * FLANK
BN_EPS = 1e-3  # Keras BatchNormalization default, as stored in the official model files
N_MODELS = 5
OUTPUTS = ("neither", "acceptor", "donor")


class ResidualUnit(nn.Module):
    """BN -> ReLU -> dilated conv, twice, plus the input (pre-activation residual unit)."""

    def __init__(self, width: int, dilation: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm1d(CHANNELS, eps=BN_EPS)
        self.conv1 = nn.Conv1d(CHANNELS, CHANNELS, width, dilation=dilation)
        self.bn2 = nn.BatchNorm1d(CHANNELS, eps=BN_EPS)
        self.conv2 = nn.Conv1d(CHANNELS, CHANNELS, width, dilation=dilation)
        # Positions lost at each end: two valid convolutions of half-width (w-1)/2*d.
        self.crop = (width - 1) * dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.relu(self.bn1(x)))
        h = self.conv2(F.relu(self.bn2(h)))
        return h + x[..., self.crop: x.shape[-1] - self.crop]


class SpliceAI(nn.Module):
    """One of the five SpliceAI-10k networks: (B, 4, L) one-hot -> (B, 3, L - 10,000) probabilities."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv1d(4, CHANNELS, 1)
        self.skip = nn.Conv1d(CHANNELS, CHANNELS, 1)
        self.units = nn.ModuleList(ResidualUnit(w, d) for w, d in zip(WIDTHS, DILATIONS))
        self.dense = nn.ModuleList(nn.Conv1d(CHANNELS, CHANNELS, 1) for _ in DENSE_AFTER)
        self.out = nn.Conv1d(CHANNELS, 3, 1)

    def streams(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Residual stream before unit 0 and after every unit (17 tensors, each shorter than the last)."""
        s = [self.stem(x)]
        for unit in self.units:
            s.append(unit(s[-1]))
        return s

    def head(self, taps: list[torch.Tensor]) -> torch.Tensor:
        """Probabilities from the streams the skip sum reads (units 0, 4, 8, 12, 16), all cut to the same positions."""
        skip = self.skip(taps[0])
        for dense, tap in zip(self.dense, taps[1:]):
            skip = skip + dense(tap)
        return torch.softmax(self.out(skip), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.streams(x)
        n = s[-1].shape[-1]
        return self.head([centre(s[i], n) for i in (0, *DENSE_AFTER)])


class Ensemble(nn.Module):
    """The five networks of the release; `forward` returns their mean probability, as the official scorer does."""

    def __init__(self, models: list[SpliceAI]) -> None:
        super().__init__()
        self.models = nn.ModuleList(models)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = None
        for model in self.models:
            y = model(x)
            total = y if total is None else total + y
        return total / len(self.models)


def centre(x: torch.Tensor, n: int) -> torch.Tensor:
    """The middle ``n`` positions of ``x`` (last dimension)."""
    cut = (x.shape[-1] - n) // 2
    return x[..., cut: cut + n]
