"""Ab initio data: the HDF5 dataset format, its reader, writer and converters.

The public namespace::

    Dataset               lazy reader, a PyTorch map-style dataset
    DatasetWriter         crash-safe writer (new systems, appended frames)
    collate_structures    DataLoader collate function for frames of any size
    SystemInfo            what the reader knows about a system
    parse_data_reference  split ``FILE.h5:NAME,NAME`` into path and names
    open_h5               open a dataset file read-only, validated
    locked_h5             the same, keeping a writer's commit out meanwhile
    convert, ConvertOptions   sources of any supported format -> HDF5
    check_dataset         validation report (``dpl data check``)
    summarise             counts and ranges (``dpl data info``)
    split_dataset, merge_datasets, export_dataset

Names are imported on first use, so a process that only writes (an MD run,
a labelling worker) does not pay for importing torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Dataset": "deepmd_like.data.reader",
    "open_h5": "deepmd_like.data.reader",
    "locked_h5": "deepmd_like.data.reader",
    "parse_data_reference": "deepmd_like.data.reader",
    "collate_structures": "deepmd_like.data.batching",
    "DatasetWriter": "deepmd_like.data.writer",
    "SystemInfo": "deepmd_like.data.schema",
    "FORMAT_NAME": "deepmd_like.data.schema",
    "FORMAT_VERSION": "deepmd_like.data.schema",
    "convert": "deepmd_like.data.converters",
    "ConvertOptions": "deepmd_like.data.converters",
    "check_dataset": "deepmd_like.data.checks",
    "summarise": "deepmd_like.data.summary",
    "split_dataset": "deepmd_like.data.transform",
    "merge_datasets": "deepmd_like.data.transform",
    "export_dataset": "deepmd_like.data.transform",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'deepmd_like.data' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
