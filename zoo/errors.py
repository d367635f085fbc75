"""The zoo's error hierarchy.

Every error carries a message (what went wrong) and a hint (what to do about it). The library
raises them; only the CLI renders them (stderr, exit code 1, a traceback only with ZOO_DEBUG=1).
"""
from __future__ import annotations

import re


class ZooError(Exception):
    """Base class: a failure the user can act on."""

    exit_code: int = 1
    default_hint: str = ""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint

    def __str__(self) -> str:
        return self.message


_PADDLE_KIND = re.compile(r"^(\((InvalidArgument|NotFound|OutOfRange|AlreadyExists|ResourceExhausted|PreconditionNotMet|"
                          r"PermissionDenied|ExecutionTimeout|Unimplemented|Unavailable|Fatal|External)\)|"
                          r"[A-Za-z]*Error: )")


def paddle_message(exc: BaseException) -> str:
    """What an exception raised by Paddle says is wrong, without its C++ or Python stack.

    Paddle puts the reason after its stacks ("In user code:", "Error Message Summary:"): the line that
    names the kind of error ("(InvalidArgument) ...", "InvalidArgumentError: ...") wins, else the first
    line that is not a stack or banner.
    """
    lines = [line.strip() for line in str(exc).strip().splitlines()]
    for line in lines:
        if _PADDLE_KIND.match(line):
            return line[:300]
    for line in lines:
        if line and not line.startswith(("C++ Traceback", "----", "0 ", "1 ", "2 ", "In user code:", "File ",
                                         "Error Message Summary")):
            return line[:300]
    return type(exc).__name__


class RecipeError(ZooError):
    """A recipe file is missing, malformed or fails schema validation."""

    default_hint = "Fix the recipe file named above; `zoo info NAME` shows a valid entry for comparison."


class UnknownNameError(ZooError):
    """A name is in none of the zoo's registries of its kind (entries, architectures, strategies, tasks)."""

    default_hint = "Run `zoo list` to see every entry."


class DuplicateNameError(ZooError):
    """A name (or alias) is registered twice in one registry."""

    default_hint = "Every name and alias in a registry must be unique."


class UsageError(ZooError):
    """The command line asks for something inconsistent."""

    exit_code = 2


class Interrupted(ZooError):
    """The user interrupted a run (Ctrl-C); what finished was kept."""

    exit_code = 130


class DownloadError(ZooError):
    """Every candidate URL of an artifact failed."""

    default_hint = "Check the network, or set ZOO_MIRROR / --mirror to a host that serves the same paths."


class ChecksumError(DownloadError):
    """Downloaded bytes do not match the registry or the pinned checksum."""

    default_hint = (
        "The server sent different bytes than expected; the verified cache entry (if any) was kept. "
        "Try another mirror, or `zoo cache clean NAME` if you trust the new file."
    )


class OfflineError(DownloadError):
    """ZOO_OFFLINE=1 and the artifact is not cached."""

    default_hint = "Unset ZOO_OFFLINE, or copy the artifact into the cache path named above."


class ArchiveError(ZooError):
    """An archive is corrupt or holds a member that would escape its folder."""

    default_hint = "The archive was refused and nothing was extracted; get it from a trusted source."


class CacheError(ZooError):
    """The cache folder cannot be used (permissions, disk full, lock timeout)."""

    default_hint = "Check ZOO_HOME: it must be a writable folder with free space."


class DataError(ZooError):
    """A dataset folder, list file or image is missing or malformed."""

    default_hint = ("Check --data: a classifier takes an ImageNet-layout folder (train_list.txt / val_list.txt, or "
                    "train/ and val/ class folders), a detector a COCO-layout folder (annotations/instances_<split>.json "
                    "and <split>/ images); calibration and evaluation also take .npy/.npz arrays.")


class ModelError(ZooError):
    """A model folder or checkpoint cannot be loaded."""

    default_hint = "Pass a folder holding a Paddle inference model (inference.pdmodel + inference.pdiparams, or __model__ + __params__)."


class QuantizeError(ZooError):
    """Quantization failed."""


class TrainError(ZooError):
    """Training (QAT or auto-compression) failed."""


class ExportError(ZooError):
    """An export failed or its artifact does not compute what its source computes."""


class ConverterError(ExportError):
    """The Paddle Lite converter crashed, exited non-zero or rejected ops."""

    default_hint = "Check the converter with `--opt-bin PATH` or ZOO_LITE_OPT, and run `make setup` to build the Lite toolchains."


class ValidationError(ExportError):
    """An exported artifact gives different results from its source."""
