"""Fetching models from the Hugging Face hub into the store (huggingface_hub is imported only when pulling)."""

from __future__ import annotations

import os
import shlex
import tempfile
from pathlib import Path

from aisci.errors import InputError
from aisci.names import check_name
from aisci.protein.store import KNOWN_MODELS, PULL_PATTERNS, ModelEntry, absolute, add_model, check_free

_NETWORK_ERRORS = {"TransportError", "RequestError", "NetworkError", "ConnectError", "TimeoutException",
                   "ConnectionError", "Timeout", "OfflineModeIsEnabled", "LocalEntryNotFoundError"}


def pull_model(store: str | os.PathLike[str], repo_id: str, *, name: str | None = None, revision: str = "main",
               force: bool = False, endpoint: str | None = None) -> ModelEntry:
    """Download an ESM model from the Hugging Face hub (only the files the loader reads) and add it.

    Args:
        store: the store directory.
        repo_id: hub repository, e.g. facebook/esm2_t6_8M_UR50D.
        name: model name (default: `default_name`).
        revision: branch, tag or commit; the commit it resolves to is recorded in the source.
        force: replace a model of the same name.
        endpoint: hub URL (default: huggingface_hub's: $HF_ENDPOINT, else huggingface.co).

    Raises:
        InputError: the hub cannot be reached (HF_HUB_OFFLINE, no network), with the commands that stage the
            model through a connected machine; unknown repo or revision; the download is not an ESM model.
    """
    root = absolute(store)
    name = name or default_name(repo_id)
    check_name(name, "model name")
    if not force:
        check_free(root, name)
    licence = next((lic for repo, lic in KNOWN_MODELS.values() if repo == repo_id), None)
    if os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE"):
        raise InputError(offline_message(repo_id, name, root, "HF_HUB_OFFLINE is set"))
    try:
        from huggingface_hub import HfApi, snapshot_download

        info = HfApi(endpoint=endpoint).model_info(repo_id, revision=revision, timeout=30)
        card = getattr(info, "card_data", None)
        licence = licence or (card.get("license") if card is not None else None)  # the model card's licence
        root.mkdir(parents=True, exist_ok=True)  # only once the hub answered: an offline pull leaves no trace
        with tempfile.TemporaryDirectory(prefix=".pull.", dir=root) as tmp:
            kwargs = {"revision": info.sha, "local_dir": tmp, "endpoint": endpoint}
            snapshot_download(repo_id, allow_patterns=PULL_PATTERNS, **kwargs)
            if not (Path(tmp) / "model.safetensors").is_file():  # older repos have only pytorch_model.bin
                snapshot_download(repo_id, allow_patterns=["pytorch_model.bin"], **kwargs)
            return add_model(root, name, tmp, licence=licence, source=f"hf:{repo_id}@{info.sha}", move=True,
                             force=force)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - hub and network failures become InputErrors, others propagate
        raise _hub_error(exc, repo_id, revision, name, root) from None


def default_name(repo_id: str) -> str:
    """Store name of a hub repo: its `KNOWN_MODELS` name, else the repo's last component."""
    return next((n for n, (repo, _) in KNOWN_MODELS.items() if repo == repo_id), repo_id.rstrip("/").split("/")[-1])


def offline_message(repo_id: str, name: str, root: Path, why: str) -> str:
    """What to do when the hub cannot be reached: pull on a connected machine, copy, add here."""
    licence = next((lic for repo, lic in KNOWN_MODELS.values() if repo == repo_id), "LICENCE")
    return (f"{repo_id}: this machine cannot reach the Hugging Face hub ({why}). Stage the model through a "
            f"machine that can: (1) there, `aisci models pull {repo_id} --model-store DIR --name {name}` (or "
            f"`hf download {repo_id} --local-dir {name}`); (2) copy DIR/{name}/ (or {name}/) to this machine, "
            f"e.g. to /path/to/{name}; (3) here, `aisci models add {name} /path/to/{name} --model-store "
            f"{shlex.quote(str(root))} --licence {shlex.quote(licence)} --source hf:{repo_id}`")


def _hub_error(exc: Exception, repo_id: str, revision: str, name: str, root: Path) -> Exception:
    """An InputError for hub failures a user can act on; other exceptions are returned unchanged."""
    from huggingface_hub import errors as hf

    if isinstance(exc, (hf.GatedRepoError, hf.RepositoryNotFoundError)):
        return InputError(f"{repo_id}: not found on the Hugging Face hub, or gated/private "
                          f"(log in with `hf auth login` if you have access) ({exc})")
    if isinstance(exc, hf.RevisionNotFoundError):
        return InputError(f"{repo_id}: no revision {revision!r} on the hub ({exc})")
    if isinstance(exc, hf.HfHubHTTPError):
        return InputError(f"{repo_id}: the hub refused the download ({exc})")
    if isinstance(exc, (TimeoutError, ConnectionError)) or {c.__name__ for c in type(exc).__mro__} & _NETWORK_ERRORS:
        return InputError(offline_message(repo_id, name, root, f"{type(exc).__name__}: {exc}"))
    return exc
