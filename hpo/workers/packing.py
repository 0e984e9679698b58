"""Memory-aware packing (``--per-device auto``): several trials share a device while they fit its memory.

With ``--per-device auto`` (or ``per_device: auto`` in the study file) ``hpo run`` plans
:data:`AUTO_MAX_PER_DEVICE` worker slots per GPU (one per core on the CPU, ``--workers K`` for
another count), and every slot gates its trials through a :class:`MemoryGate`: a trial starts
training only while its expected peak memory fits the device's free memory with a margin;
otherwise the slot waits (its trial stays RUNNING, heartbeats and all) and never fails for it.

- **Expected peak**: the largest ``peak_memory_bytes`` of the study's COMPLETE trials of the same
  shape (:class:`TrialShape`: parameter count, batch sizes, precision, memory format, compile, and
  the device's name, since a CPU's peak RSS says nothing about a GPU's tensors). A shape never seen
  has no figure yet: its first epoch is its probe. It starts only when no other trial on the device
  is still in its first epoch, and until its own first epoch has ended no other trial starts there.
- **Fits**: ``expected x (1 + MARGIN_FRACTION) + MARGIN_BYTES <= free - pending``, where ``free``
  is the device's free memory now and ``pending`` the expected peaks of the device's trials still
  in their first epoch (started, but not yet at their peak, so not yet in ``free``). After its
  first epoch a trial's memory shows in ``free``: the caching allocator keeps what it took.
- **Never stuck**: a slot alone on its device starts its trial whatever the figures say (if it
  does not fit, it fails ``oom`` like any trial that does not fit a device).

The slots of one device (in one ``hpo run``, or in several ``hpo worker`` processes on one host)
agree through a ledger folder (``$HPO_PACKING_DIR``, default ``<tmp>/hpo-packing``; one
subfolder per device): one small JSON file per running trial, a lock, and ``events.jsonl``,
one line per start, wait, first-epoch end and end, with the figures behind each decision (the
benchmarks read it).

The device's memory is read through :class:`DeviceMemory` (free and total bytes):
:class:`CudaMemory` (``torch.cuda.mem_get_info``), :class:`HostMemory` (``/proc/meminfo`` for CPU
slots) and, for tests, :class:`FileMemory`: ``$HPO_FAKE_DEVICE_MEMORY`` names a JSON file
``{"total": BYTES, "free": BYTES}`` describing a simulated device on which every trial past its
first epoch holds its expected peak (or ``"trial_bytes"``, for trials of unknown shape).
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import logging
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from optuna.trial import TrialState

from hpo.errors import ConfigError
from hpo.trials import TrialRecord

log = logging.getLogger("hpo")

AUTO = "auto"
AUTO_MAX_PER_DEVICE = 8  # slots per GPU under auto: small-model trials a GPU runs at once at most
MARGIN_FRACTION = 0.25  # the tensors' peak x 1.25: the caching allocator's rounding and fragmentation
MARGIN_BYTES = 1 << 30  # + 1 GiB: a new process's CUDA context (~0.5 GiB) and cuDNN workspaces
POLL_SECONDS = 1.0  # how often a waiting slot looks at the device again
FAKE_MEMORY_ENV = "HPO_FAKE_DEVICE_MEMORY"
PACKING_DIR_ENV = "HPO_PACKING_DIR"


# ---------------------------------------------------------------------------------------------
# The setting: a count or auto
# ---------------------------------------------------------------------------------------------


def parse_per_device(value: Any, where: str = "--per-device") -> int | str | None:
    """A ``--per-device`` / ``per_device:`` value: a whole number of at least 1, ``auto``, or None.

    Args:
        value: What the user gave (an int, a string such as ``"2"`` or ``"auto"``, or None).
        where: How the message names the setting (``--per-device``, ``studies/x.yaml: per_device``).

    Returns:
        The count, :data:`AUTO`, or None when no value was given.

    Raises:
        ConfigError: any other value, with the fix.
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text == AUTO:
            return AUTO
        if text.isdigit() and int(text) >= 1:
            return int(text)
    elif isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise ConfigError(f"{where} must be a whole number of at least 1, or auto (got {value!r})")


def study_per_device(config: Any) -> int | str | None:
    """The ``per_device:`` of a study's file (``hpo run``'s default for ``--per-device``).

    ``per_device`` says how a machine runs the study, not what the study is: it is not part of the
    stored definition (changing it changes no study), and ``hpo worker`` takes ``--per-device``.

    Args:
        config: A ``StudyConfig`` loaded from a file (``source`` is its path).

    Returns:
        The count, :data:`AUTO`, or None when the file sets none (or the study came from storage).

    Raises:
        ConfigError: the value is neither a whole number of at least 1 nor ``auto``, naming the file.
    """
    from hpo.study_files import display_path
    from hpo.typed import read_yaml

    path = Path(config.source)
    if not path.is_file():
        return None
    origin = display_path(path)
    data = read_yaml(path, origin)
    return parse_per_device(data.get("per_device") if isinstance(data, dict) else None, f"{origin}: per_device")


def auto_slots(device_names: list[str]) -> int:
    """Slots per device under ``auto``: :data:`AUTO_MAX_PER_DEVICE` on GPUs, one per core on a CPU."""
    from hpo.device import available_cpu_count

    if all(name == "cpu" for name in device_names):
        return available_cpu_count()
    return AUTO_MAX_PER_DEVICE


# ---------------------------------------------------------------------------------------------
# The device-memory seam
# ---------------------------------------------------------------------------------------------


class DeviceMemory(Protocol):
    """Free and total bytes of one device, and what this process's running trial holds on it."""

    def free_total(self) -> tuple[int, int]:
        """``(free, total)`` bytes of the device now."""

    def held(self, entry: dict) -> int:
        """Bytes the trial of a ledger entry holds past its first epoch (what the gate records)."""


class CudaMemory:
    """A CUDA device, read with ``torch.cuda.mem_get_info`` (every process's use counted)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def free_total(self) -> tuple[int, int]:
        free, total = torch.cuda.mem_get_info(self.device)
        return int(free), int(total)

    def held(self, entry: dict) -> int:
        return int(torch.cuda.max_memory_reserved(self.device))


class HostMemory:
    """The host's RAM, for CPU slots (``MemAvailable`` and ``MemTotal`` of ``/proc/meminfo``)."""

    def free_total(self) -> tuple[int, int]:
        fields = {}
        with contextlib.suppress(OSError), open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                fields[key] = int(value.split()[0]) * 1024
        total = fields.get("MemTotal", 0)
        return fields.get("MemAvailable", total), total

    def held(self, entry: dict) -> int:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


class FileMemory:
    """A simulated device for tests: ``{"total", "free", "trial_bytes"}`` read from a JSON file.

    ``free`` is the device's free memory with no trial on it; every ledger entry past its first
    epoch holds its expected peak (``trial_bytes`` for an unknown shape). The file is read anew
    on every call, so a test may change the figures while workers run.
    """

    def __init__(self, path: str | os.PathLike, ledger: Ledger) -> None:
        self.path, self.ledger = Path(path), ledger

    def _figures(self) -> dict:
        try:
            figures = json.loads(self.path.read_text())
            return {"total": int(figures["total"]), "free": int(figures["free"]),
                    "trial_bytes": int(figures.get("trial_bytes", 0))}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{FAKE_MEMORY_ENV}={self.path}: give a JSON file such as "
                              f'{{"total": 8000000000, "free": 8000000000}} ({exc})') from None

    def free_total(self) -> tuple[int, int]:
        figures = self._figures()
        held = sum(int(e.get("held") or 0) for e in self.ledger.entries() if e.get("realized"))
        return max(0, figures["free"] - held), figures["total"]

    def held(self, entry: dict) -> int:
        return int(entry["expected"]) if entry.get("known") else self._figures()["trial_bytes"]


def memory_for(device: torch.device, ledger: Ledger) -> DeviceMemory:
    """The seam for a device: the fake file when ``$HPO_FAKE_DEVICE_MEMORY`` is set, else the real one."""
    fake = os.environ.get(FAKE_MEMORY_ENV, "").strip()
    if fake:
        return FileMemory(fake, ledger)
    return CudaMemory(device) if device.type == "cuda" else HostMemory()


# ---------------------------------------------------------------------------------------------
# The ledger: the running trials of one device, shared by its slots
# ---------------------------------------------------------------------------------------------


def device_key(device: torch.device) -> str:
    """A folder name for a device, equal in every process of this host (a GPU's UUID when known)."""
    host = socket.gethostname()
    if device.type == "cuda":
        uuid = getattr(torch.cuda.get_device_properties(device), "uuid", None)
        return f"{host}-cuda-{uuid}" if uuid else f"{host}-cuda{device.index or 0}"
    return f"{host}-{device.type}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Ledger:
    """The running trials of one device: one JSON file per trial, a lock, and an event log.

    Args:
        folder: The device's ledger folder (created).
    """

    _counter = itertools.count()

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    @classmethod
    def for_device(cls, device: torch.device) -> Ledger:
        """The ledger of a device under ``$HPO_PACKING_DIR`` (default ``<tmp>/hpo-packing``)."""
        root = os.environ.get(PACKING_DIR_ENV) or os.path.join(tempfile.gettempdir(), "hpo-packing")
        return cls(Path(root) / device_key(device))

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the device's lock: one slot decides at a time."""
        with open(self.folder / "lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def entries(self) -> list[dict]:
        """The live entries (a dead process's are removed)."""
        entries = []
        for path in sorted(self.folder.glob("slot-*.json")):
            try:
                entry = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # being written or removed right now
            if _alive(int(entry["pid"])):
                entries.append(entry)
            else:
                path.unlink(missing_ok=True)
        return entries

    def new_id(self) -> str:
        """A name for an entry, unique on this host."""
        return f"{os.getpid()}-{next(self._counter)}"

    def write(self, entry: dict) -> None:
        """Add or update an entry (atomically: readers see the old or the new file)."""
        path = self.folder / f"slot-{entry['id']}.json"
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(entry))
        os.replace(tmp, path)

    def remove(self, entry: dict) -> None:
        """Remove an entry."""
        (self.folder / f"slot-{entry['id']}.json").unlink(missing_ok=True)

    def log(self, event: str, **figures: Any) -> None:
        """Append one line to ``events.jsonl``: the event, its time and figures."""
        line = json.dumps({"event": event, "time": time.time(), "pid": os.getpid(), **figures})
        with open(self.folder / "events.jsonl", "a") as handle:
            handle.write(line + "\n")

    def events(self) -> list[dict]:
        """Every event logged so far, oldest first."""
        path = self.folder / "events.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def max_running(events: list[dict]) -> int:
    """The most trials that trained on the device at once, from a ledger's events."""
    running = most = 0
    for event in sorted(events, key=lambda e: e["time"]):
        running += {"start": 1, "end": -1}.get(event["event"], 0)
        most = max(most, running)
    return most


# ---------------------------------------------------------------------------------------------
# Expected peaks and the gate
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialShape:
    """What a trial's peak memory depends on, besides its data: equal shapes, equal peaks."""

    param_count: int
    batch_size: int
    eval_batch_size: int
    precision: str
    channels_last: str
    compile: bool
    device: str  # the device's name (hpo.device.device_name)

    @classmethod
    def of(cls, param_count: int, train_config: Any, device: str) -> TrialShape:
        """The shape of a trial from its parameter count, its ``TrainConfig`` and the device's name."""
        return cls(int(param_count), int(train_config.batch_size), int(train_config.eval_batch_size),
                   str(train_config.precision), str(train_config.channels_last), bool(train_config.compile), device)


def needed_bytes(expected: int) -> int:
    """Free bytes a trial of that expected peak needs: the peak and the margins."""
    return int(expected * (1 + MARGIN_FRACTION)) + MARGIN_BYTES


class MemoryGate:
    """A device's gate: trials start while their expected peak fits (see the module docstring).

    Args:
        study: The study (its COMPLETE trials give the expected peaks).
        config: The study's definition (to read a stored trial's batch size and precision).
        device: The slot's device.
        ledger: The device's ledger (default :meth:`Ledger.for_device`).
        memory: The device-memory seam (default :func:`memory_for`).
        poll_seconds: How often a waiting slot looks again.
    """

    def __init__(self, study: Any, config: Any, device: torch.device, ledger: Ledger | None = None,
                 memory: DeviceMemory | None = None, poll_seconds: float = POLL_SECONDS) -> None:
        from hpo.device import device_name

        self.study, self.config, self.device = study, config, device
        self.device_name = device_name(device)
        self.ledger = ledger or Ledger.for_device(device)
        self.memory = memory or memory_for(device, self.ledger)
        self.poll_seconds = poll_seconds
        self._shapes: dict[int, TrialShape | None] = {}  # finished trials' shapes, by trial number

    def _stored_shape(self, trial: Any, record: TrialRecord) -> TrialShape | None:
        if trial.number not in self._shapes:
            try:
                train_config = self.config.trial_config(trial.params).train
                self._shapes[trial.number] = TrialShape.of(record.param_count, train_config, record.device_name)
            except Exception:  # a stored trial this release cannot rebuild gives no figure
                self._shapes[trial.number] = None
        return self._shapes[trial.number]

    def expected_peak(self, shape: TrialShape) -> int | None:
        """The largest peak of the study's COMPLETE trials of this shape, or None if none has one."""
        peaks = []
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            record = TrialRecord.of(trial)
            if record.peak_memory_bytes is None or record.param_count is None or record.device_name is None:
                continue
            if self._stored_shape(trial, record) == shape:
                peaks.append(int(record.peak_memory_bytes))
        return max(peaks) if peaks else None

    def decide(self, expected: int | None) -> tuple[bool, dict]:
        """Whether a trial of that expected peak (None: unknown) may start now, and the figures why.

        Call under :meth:`Ledger.locked`.
        """
        others = self.ledger.entries()
        free, total = self.memory.free_total()
        pending = sum(int(e["expected"]) for e in others if not e.get("realized"))
        probing = any(not e.get("realized") and not e.get("known") for e in others)
        figures = {"expected": expected, "free": free, "total": total, "pending": pending, "running": len(others)}
        if not others:
            return True, figures  # alone on the device: never wait for nothing
        if probing or (expected is None and pending):
            return False, figures  # a trial of unknown size is still growing, or would be
        return needed_bytes(expected or 0) <= free - pending, figures

    def acquire(self, expected: int | None) -> dict:
        """Wait until a trial of that expected peak may start, and record it as running.

        Returns:
            Its ledger entry (pass it to :meth:`realize` and :meth:`release`).
        """
        waited = False
        while True:
            with self.ledger.locked():
                go, figures = self.decide(expected)
                if go:
                    entry = {"id": self.ledger.new_id(), "pid": os.getpid(), "expected": int(expected or 0),
                             "known": expected is not None, "realized": False, "held": 0}
                    self.ledger.write(entry)
                    self.ledger.log("start", slot=entry["id"], **figures)
                    return entry
                if not waited:
                    self.ledger.log("wait", **figures)
            if not waited:
                log.info("packing: waiting for memory on %s (expected peak %s, %s free, %s pending, %d running)",
                         self.device, _bytes(expected), _bytes(figures["free"]), _bytes(figures["pending"]),
                         figures["running"])
                waited = True
            time.sleep(self.poll_seconds)

    def realize(self, entry: dict) -> None:
        """The trial's first epoch ended: its memory now shows in the device's free memory."""
        if entry["realized"]:
            return
        with self.ledger.locked():
            entry.update(realized=True, held=self.memory.held(entry))
            self.ledger.write(entry)
            self.ledger.log("realized", slot=entry["id"], held=entry["held"])

    def release(self, entry: dict) -> None:
        """The trial ended: take it off the ledger."""
        with self.ledger.locked():
            self.ledger.remove(entry)
            self.ledger.log("end", slot=entry["id"])

    def wrap(self, trainer: Callable[..., Any]) -> Callable[..., Any]:
        """A trainer with ``hpo.train.train``'s signature that waits at this gate before training."""
        from hpo.models import count_params

        def gated(model, data, config, **options):
            shape = TrialShape.of(count_params(model), config, self.device_name)
            entry = self.acquire(self.expected_peak(shape))
            on_epoch = options.get("on_epoch")

            def first_epoch_seen(metrics):
                self.realize(entry)
                if on_epoch is not None:
                    on_epoch(metrics)

            options["on_epoch"] = first_epoch_seen
            try:
                return trainer(model, data, config, **options)
            finally:
                self.release(entry)

        return gated


def _bytes(value: int | None) -> str:
    return "unknown" if value is None else f"{value / 2**30:.2f} GiB"


def gate_for(ctx: Any) -> MemoryGate:
    """The gate of a worker's :class:`~hpo.workers.trial.TrialContext` (its study, definition, device)."""
    return MemoryGate(ctx.study, ctx.config, ctx.device)


__all__ = [
    "AUTO", "AUTO_MAX_PER_DEVICE", "MARGIN_BYTES", "MARGIN_FRACTION", "CudaMemory", "DeviceMemory", "FileMemory",
    "HostMemory", "Ledger", "MemoryGate", "TrialShape", "auto_slots", "device_key", "gate_for",
    "max_running", "memory_for", "needed_bytes", "parse_per_device",
]
