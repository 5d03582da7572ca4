"""Files: HDF5 training streams, the MVTec folder layout, and images through imageio.

HDF5 streams (the paper's supervised training data, ``syn_stream`` and ``ground_truth``):

- :func:`write_stream` writes arrays held in memory; :class:`StreamWriter` writes batches made
  on the fly. Both write to ``FILE.part`` and rename it to ``FILE`` when complete, so there is
  never a half-written file under the final name, and an interrupted write resumes where it
  stopped, producing the same bytes as an uninterrupted one.
- :func:`open_stream` returns a :class:`StreamReader`: ``len``, ``reader[i]``, slices,
  batches (:meth:`~StreamReader.read_batch`, ``__getitems__`` for a torch ``DataLoader``),
  :meth:`~StreamReader.iter_chunks`, ``attrs``, context manager.
- :func:`merge_streams` joins parts written by ``ispad synth --shard K/N``.

Chunks are standard zlib streams read by HDF5's built-in gzip filter, so any HDF5 reader opens the
files; the default ``compression="isal"`` encodes them with ISA-L (python-isal), about four
times faster than zlib level 1, and readers inflate them with ISA-L too. ``compression="zstd"``
(extra ``[zstd]``) writes Zstandard chunks for HDF5's registered Zstd filter, which read about
twice as fast again; other HDF5 readers then need the filter plugin (``import hdf5plugin``).

Unsupervised splits: :func:`read_mvtec` / :func:`write_mvtec` and :class:`MVTecDataset`.
Single images: :func:`read_image`, :func:`read_images`, :func:`list_images`, :func:`write_png`;
fault-free scans with their ROIs, matched by file name: :func:`read_scans`.
"""

from ispad_core.io._codec import COMPRESSIONS
from ispad_core.io._images import IMAGE_EXTENSIONS, list_images, read_image, read_images, write_png
from ispad_core.io._mvtec import MVTecDataset, read_mvtec, write_mvtec
from ispad_core.io._real import LabelledSet, RealDefects, read_labelled_set, read_real_defects
from ispad_core.io._scans import Scans, read_scans
from ispad_core.io._streamformat import FIELDS, part_path
from ispad_core.io._streammerge import merge_streams
from ispad_core.io._streamreader import StreamReader, open_stream
from ispad_core.io._streamwriter import StreamWriter, write_stream

__all__ = [
    "COMPRESSIONS",
    "FIELDS",
    "IMAGE_EXTENSIONS",
    "LabelledSet",
    "MVTecDataset",
    "RealDefects",
    "Scans",
    "StreamReader",
    "StreamWriter",
    "list_images",
    "merge_streams",
    "open_stream",
    "part_path",
    "read_image",
    "read_images",
    "read_labelled_set",
    "read_mvtec",
    "read_real_defects",
    "read_scans",
    "write_mvtec",
    "write_png",
    "write_stream",
]


def __getattr__(name: str):
    """``ispad_core.io.RealTransform``, the old home of :class:`ispad_core.nn.RealTransform` (a
    training transform, which moved to the torch layer); it warns and gives the class."""
    if name == "RealTransform":
        import warnings

        warnings.warn(
            "ispad_core.io.RealTransform moved to ispad_core.nn.RealTransform; the old name will go",
            DeprecationWarning,
            stacklevel=2,
        )
        from ispad_core.nn.transform import RealTransform

        return RealTransform
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
