"""Ab initio data: the HDF5 dataset format, its reader, writer and converters.

The public namespace::

    Dataset             lazy reader, a PyTorch map-style dataset
    DatasetWriter       crash-safe writer (new systems, appended frames)
    collate_structures  DataLoader collate function for frames of any size
    SystemInfo          what the reader knows about a system
    parse_data_reference  split ``FILE.h5:NAME,NAME``
"""

from deepmd_like.data.batching import collate_structures
from deepmd_like.data.reader import Dataset, open_h5, parse_data_reference
from deepmd_like.data.schema import FORMAT_NAME, FORMAT_VERSION, SystemInfo
from deepmd_like.data.writer import DatasetWriter

__all__ = [
    "Dataset",
    "DatasetWriter",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "SystemInfo",
    "collate_structures",
    "open_h5",
    "parse_data_reference",
]
