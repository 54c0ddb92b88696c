"""Load the official SpliceAI Keras weight files (spliceai/models/spliceai{1..5}.h5) into PyTorch with h5py.

No TensorFlow or Keras is imported. The loader reads the model graph stored in the file
(`model_config`), walks it from the input to the softmax, checks every layer against the
SpliceAI-10k architecture (kind, kernel width, dilation, filters, padding, BN epsilon) and copies
each tensor after checking its shape. Anything missing, extra or misshapen stops the load with a
message naming the file and the layer.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aisci.errors import InputError
from aisci.fileio import sha256
from aisci.splice.package import INSTALL, official_file

if TYPE_CHECKING:  # the architecture imports torch: only the loaders need it, not the pre-run check
    from aisci.splice import model as arch

log = logging.getLogger(__name__)

WEIGHTS_ENV = "AISCI_SPLICEAI_WEIGHTS"
FILES = tuple(f"spliceai{i}.h5" for i in range(1, 6))  # the five networks of the ensemble


@dataclass(frozen=True)
class ModelCard:
    """What the model registry records about a set of weights."""

    name: str
    source: str
    licence: str
    citation: str
    sha256: dict[str, str]


# The model registry entry for SpliceAI. The weights are Illumina's, released under GPL-3.0 in
# the `spliceai` PyPI package; aisci (MIT) does not ship them, it reads them where pip put them.
SPLICEAI = ModelCard(
    name="spliceai-10k",
    source="PyPI package spliceai==1.3.1 (Illumina), files spliceai/models/spliceai{1..5}.h5",
    licence="GPL-3.0",
    citation="Jaganathan et al., Predicting splicing from primary sequence with deep learning, Cell 176:535 (2019)",
    sha256={
        "spliceai1.h5": "e1fd5adcef7489d604b10e79c40078ef790d51ef048c4ce3869c9119ac5de42b",
        "spliceai2.h5": "6ab042b82ab966b6d3582cb31b96f0859ea08a864f168d69e83aa14450a3b66e",
        "spliceai3.h5": "e2e790bde53dfdf410c6dc434a86122a7d12f3f38dc2ef45d85986e9ecf22fad",
        "spliceai4.h5": "ca88ac9e58e69ba6fdeed319b72f063f164c9abf7392eaccef903e94c1d99dd6",
        "spliceai5.h5": "791cd22c62a80a08d2ca674615a93ce8159d7b55bd157cfef2983b1bd6b41391",
    },
)


def weights_dir(directory: str | os.PathLike[str] | None = None) -> Path:
    """Where the five .h5 files are: ``directory``, else $AISCI_SPLICEAI_WEIGHTS, else the installed spliceai package.

    Raises:
        InputError: no directory given and the spliceai package is not installed.
    """
    if directory is None:
        directory = os.environ.get(WEIGHTS_ENV) or None
    if directory is not None:
        return Path(directory)
    return official_file("spliceai/models", f"SpliceAI weights (or {WEIGHTS_ENV} / --weights: a folder holding {', '.join(FILES)})")


def verify_weights(directory: str | os.PathLike[str] | None = None) -> Path:
    """Check the five weight files are present and intact before any job is submitted; return their folder.

    Raises:
        InputError: naming the missing or altered file and the command that stages the weights.
    """
    folder = weights_dir(directory)
    for name in FILES:
        _check_file(folder / name, verify=True)
    return folder


def _check_file(path: Path, verify: bool) -> None:
    if not path.is_file():
        raise InputError(f"{path}: SpliceAI weight file missing; stage the weights with `{INSTALL}` "
                         f"or set {WEIGHTS_ENV} to a folder holding {', '.join(FILES)}")
    if verify and sha256(path) != SPLICEAI.sha256[path.name]:
        raise InputError(f"{path}: SHA-256 differs from the official spliceai 1.3.1 release (reinstall with "
                         f"`pip install --force-reinstall --no-deps spliceai==1.3.1`, or pass --no-verify-weights "
                         "to load it anyway)")


def load_ensemble(directory: str | os.PathLike[str] | None = None, verify: bool = True) -> "arch.Ensemble":
    """The five official networks as an `Ensemble` on the CPU, in eval mode (move it with ``.to(device)``).

    Args:
        directory: folder with spliceai1.h5 .. spliceai5.h5 (see `weights_dir`).
        verify: compare each file's SHA-256 with the registry; a mismatch is an error.

    Raises:
        InputError: a file is missing, altered, or not the SpliceAI-10k architecture.
    """
    from aisci.splice import model as arch

    folder = weights_dir(directory)
    models = []
    for name in FILES:
        _check_file(folder / name, verify)
        models.append(load_keras_h5(folder / name))
    log.info("loaded %s from %s (licence %s)", SPLICEAI.name, folder, SPLICEAI.licence)
    return arch.Ensemble(models).eval()


def load_keras_h5(path: str | os.PathLike[str]) -> "arch.SpliceAI":
    """One SpliceAI-10k network from a Keras 2 .h5 model file, checked layer by layer.

    Raises:
        InputError: the file is not a Keras model of the SpliceAI-10k architecture.
    """
    import h5py
    import torch

    from aisci.splice import model as arch

    path = Path(path)
    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise InputError(f"{path}: not a readable HDF5 file ({exc})") from None
    with fh:
        try:
            text = fh.attrs["model_config"]
            group = fh["model_weights"]
        except KeyError as exc:
            raise InputError(f"{path}: not a Keras model file (no {exc.args[0]})") from None
        net = arch.SpliceAI()
        plan = _walk(path, _layers(path, text), net)
        used: set[str] = set()
        with torch.no_grad():
            for layer, module, kind in plan:
                used.add(layer)
                tensors = _tensors(path, group, layer)
                if kind == "conv":
                    _copy(path, layer, "kernel", tensors, module.weight, lambda a: a.transpose(2, 1, 0))
                    _copy(path, layer, "bias", tensors, module.bias)
                else:
                    _copy(path, layer, "gamma", tensors, module.weight)
                    _copy(path, layer, "beta", tensors, module.bias)
                    _copy(path, layer, "moving_mean", tensors, module.running_mean)
                    _copy(path, layer, "moving_variance", tensors, module.running_var)
        extra = [n for n in _names(group.attrs.get("layer_names", []))
                 if n not in used and (n not in group or len(group[n].attrs.get("weight_names", [])))]
        if extra:
            raise InputError(f"{path}: layers with weights that SpliceAI-10k does not have: {', '.join(extra)}")
    return net.eval()


def _names(values: Any) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def _tensors(path: Path, group: Any, layer: str) -> dict[str, Any]:
    if layer not in group:
        raise InputError(f"{path}: no weights stored for layer {layer!r}")
    g = group[layer]
    out = {}
    for full in _names(g.attrs.get("weight_names", [])):
        short = full.rsplit("/", 1)[-1].split(":")[0]
        if full in g:  # listed but absent counts as missing
            out[short] = g[full][()]
    return out


def _copy(path: Path, layer: str, key: str, tensors: dict[str, Any], target: Any, transform: Any = None) -> None:
    import torch

    if key not in tensors:
        raise InputError(f"{path}: layer {layer!r} has no {key!r} tensor (has {', '.join(sorted(tensors)) or 'none'})")
    value = tensors[key] if transform is None else transform(tensors[key])
    if tuple(value.shape) != tuple(target.shape):
        raise InputError(
            f"{path}: layer {layer!r} {key} has shape {tuple(tensors[key].shape)}, "
            f"SpliceAI-10k expects {tuple(target.shape) if transform is None else 'the transpose of ' + str(tuple(target.shape))}"
        )
    target.copy_(torch.from_numpy(value.copy()))


def _layers(path: Path, text: Any) -> dict[str, dict[str, Any]]:
    """The layers of a Keras 2 ``model_config`` attribute by name, checked for the keys `_walk` reads.

    Raises:
        InputError: naming the weights file and what is wrong (not JSON, no layer list, a layer
            without name/class_name/config, malformed inbound_nodes, a name used twice).
    """
    def fail(msg: str) -> InputError:
        return InputError(f"{path}: malformed Keras model graph (the model_config attribute): {msg}")

    try:
        config = json.loads(text)
    except (TypeError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise fail(f"not JSON ({exc})") from None
    entries = config.get("config") if isinstance(config, dict) else None
    entries = entries.get("layers") if isinstance(entries, dict) else None
    if not isinstance(entries, list):
        raise fail("no config.layers list")
    layers: dict[str, dict[str, Any]] = {}
    for i, entry in enumerate(entries):
        ok = isinstance(entry, dict) and isinstance(entry.get("name"), str) \
            and isinstance(entry.get("class_name"), str) and isinstance(entry.get("config"), dict)
        if not ok:
            raise fail(f"layer {i} lacks a name, class_name or config")
        name = entry["name"]
        nodes = entry.get("inbound_nodes") or []
        if not (isinstance(nodes, list) and all(
                isinstance(node, list) and node and all(isinstance(x, list) and x and isinstance(x[0], str) for x in node)
                for node in nodes)):
            raise fail(f"layer {name!r} has malformed inbound_nodes (expected [[[name, ...], ...], ...])")
        if name in layers:
            raise fail(f"layer name {name!r} used twice")
        layers[name] = entry
    for name, entry in layers.items():
        for node in entry.get("inbound_nodes") or []:
            unknown = [x[0] for x in node if x[0] not in layers]
            if unknown:
                raise fail(f"layer {name!r} takes input from {unknown[0]!r}, which is not a layer")
    return layers


def _walk(path: Path, layers: dict[str, dict[str, Any]], net: "arch.SpliceAI") -> list[tuple[str, Any, str]]:
    """Map the Keras layer graph (checked by `_layers`) onto the modules of ``net``: [(layer name, module, kind)]."""
    from aisci.splice import model as arch

    consumers: dict[str, list[str]] = {}
    for name, entry in layers.items():
        for node in entry.get("inbound_nodes") or []:
            for inbound in node:
                consumers.setdefault(inbound[0], []).append(name)

    def fail(msg: str) -> InputError:
        return InputError(f"{path}: not the SpliceAI-10k architecture: {msg}")

    def next_of(name: str, kind: str, width: int | None = None) -> str:
        found = [
            c for c in consumers.get(name, [])
            if layers[c]["class_name"] == kind
            and (width is None or layers[c]["config"].get("kernel_size") == [width])
        ]
        if len(found) != 1:
            raise fail(f"expected one {kind}{'' if width is None else f' (width {width})'} after {name!r}, found {len(found)}")
        return found[0]

    def conv(name: str, width: int, dilation: int, filters: int) -> str:
        cfg = layers[name]["config"]
        want = {"kernel_size": [width], "dilation_rate": [dilation], "filters": filters}
        got = {k: cfg.get(k) for k in want}
        if got != want:
            raise fail(f"layer {name!r} is {got}, expected {want}")
        return name

    def bn(name: str) -> str:
        eps = layers[name]["config"].get("epsilon")
        if not isinstance(eps, (int, float)) or abs(eps - arch.BN_EPS) > 1e-12:
            raise fail(f"layer {name!r} has epsilon {eps}, expected {arch.BN_EPS}")
        return name

    inputs = [n for n, e in layers.items() if e["class_name"] == "InputLayer"]
    if len(inputs) != 1:
        raise fail(f"expected one input layer, found {len(inputs)}")
    plan: list[tuple[str, Any, str]] = []
    stem = conv(next_of(inputs[0], "Conv1D"), 1, 1, arch.CHANNELS)
    plan.append((stem, net.stem, "conv"))
    plan.append((conv(next_of(stem, "Conv1D", 1), 1, 1, arch.CHANNELS), net.skip, "conv"))
    current = stem
    for i, (unit, width, dilation) in enumerate(zip(net.units, arch.WIDTHS, arch.DILATIONS)):
        b1 = bn(next_of(current, "BatchNormalization"))
        c1 = conv(next_of(next_of(b1, "Activation"), "Conv1D"), width, dilation, arch.CHANNELS)
        b2 = bn(next_of(c1, "BatchNormalization"))
        c2 = conv(next_of(next_of(b2, "Activation"), "Conv1D"), width, dilation, arch.CHANNELS)
        add = next_of(c2, "Add")
        inbound = {n[0] for n in layers[add]["inbound_nodes"][0]}
        if inbound != {c2, current}:
            raise fail(f"residual add {add!r} joins {sorted(inbound)}, expected {sorted({c2, current})}")
        plan += [(b1, unit.bn1, "bn"), (c1, unit.conv1, "conv"), (b2, unit.bn2, "bn"), (c2, unit.conv2, "conv")]
        current = add
        if i + 1 in arch.DENSE_AFTER:
            dense = conv(next_of(current, "Conv1D", 1), 1, 1, arch.CHANNELS)
            plan.append((dense, net.dense[arch.DENSE_AFTER.index(i + 1)], "conv"))
    outs = [n for n, e in layers.items() if e["class_name"] == "Conv1D" and e["config"].get("activation") == "softmax"]
    if len(outs) != 1:
        raise fail(f"expected one softmax output convolution, found {len(outs)}")
    plan.append((conv(outs[0], 1, 1, 3), net.out, "conv"))
    crops = [e["config"].get("cropping") for e in layers.values() if e["class_name"] == "Cropping1D"]
    if crops != [[arch.FLANK, arch.FLANK]]:
        raise fail(f"cropping {crops}, expected [[{arch.FLANK}, {arch.FLANK}]]")
    return plan
