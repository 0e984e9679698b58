"""Read W&B's offline run files (``run-<id>.wandb``) back, record by record.

wandb 0.31 ships no Python reader, so this is the format as its Go core writes it: a 7-byte file
header (``:W&B``, magic 0xBEE1, version 0), then LevelDB-log records in 32 KiB blocks, each with a
7-byte header (CRC32, length, type: 1 full, 2 first, 3 middle, 4 last); a record is a serialised
``wandb_internal_pb2.Record``.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

from wandb.proto import wandb_internal_pb2

BLOCK = 32768
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> list[wandb_internal_pb2.Record]:
    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    out, pending, pos = [], b"", HEADER
    while pos + HEADER <= len(data):
        left_in_block = BLOCK - pos % BLOCK
        if left_in_block < HEADER:  # the block's tail is padding
            pos += left_in_block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        chunk = data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        if kind == 0 and length == 0:
            continue
        if kind in (FULL, FIRST):
            pending = chunk
        else:
            pending += chunk
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            out.append(record)
            pending = b""
    return out


@dataclass
class OfflineRun:
    name: str = ""
    project: str = ""
    group: str = ""
    config: dict = field(default_factory=dict)
    history: list = field(default_factory=list)  # (step, {key: value})
    summary: dict = field(default_factory=dict)
    artifacts: list = field(default_factory=list)  # (name, type, [paths])
    exit_code: int | None = None


def read_run(path: Path) -> OfflineRun:
    run = OfflineRun()
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.name, run.project, run.group = record.run.display_name, record.run.project, record.run.run_group
            run.config.update({item.key: json.loads(item.value_json) for item in record.run.config.update})
        elif kind == "config":
            run.config.update({item.key: json.loads(item.value_json) for item in record.config.update})
        elif kind == "history":
            items = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            run.history.append((record.history.step.num, items))
        elif kind == "summary":
            run.summary.update({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                                for item in record.summary.update})
        elif kind == "artifact":
            run.artifacts.append((record.artifact.name, record.artifact.type,
                                  [entry.path for entry in record.artifact.manifest.contents]))
        elif kind == "exit":
            run.exit_code = record.exit.exit_code
    return run


def offline_runs(wandb_dir: Path) -> dict[str, OfflineRun]:
    """Every offline run under ``WANDB_DIR``, by display name."""
    runs = [read_run(path) for path in sorted(Path(wandb_dir).glob("wandb/offline-run-*/run-*.wandb"))]
    return {run.name: run for run in runs}
