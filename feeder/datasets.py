"""Datasets over the per-split skeleton arrays (acsar_facts.md §5, §6).

Files of one split (see the data conventions): ``*_data_joint.npy`` (or bone /
motion) ``(N, C, T, V, M)`` float32, read through a memmap; ``*_num_frame.npy``
``(N,)`` valid frames; ``*_label.pkl`` ``(sample_names, labels)``; optionally
``text/{split}_{encoder}.npy`` ``(N, L, D)`` float16 token features aligned with
the split's sample order.

- :class:`PretrainDataset` ``[i] -> (view1 (C, W, V, M) float32, view2, text (L, D)
  float32 or an empty (0,) array, index)``; two independent views from
  :func:`feeder.transforms.build_pretrain_transform`, drawn from
  ``view_rng(seed, epoch, index, view)``; call ``set_epoch`` every epoch.  With
  ``return_raw=True`` it returns ``(clip (C, T_store, V, M) float32, num_frame, text,
  index)`` instead, for :class:`feeder.batch_augment.BatchAugmenter` on the device
  (``augmenter(clip, num_frame, index, epoch=epoch, view=v)``, which samples the same
  parameters in the main process).  ``raw_params=True`` (with ``return_raw``) replaces
  ``num_frame`` by ``params = [view0, view1]``, the per-op parameters sampled in the
  workers (the default collate stacks them into tensors)::

      clip, params, text, index = batch
      v1 = augmenter(clip.to(device), params=params[0])
      v2 = augmenter(clip.to(device), params=params[1])

- :class:`DownstreamDataset` ``[i] -> (x (C, W, V, M) float32, label, index)``: centre
  crop, stream conversion, no augmentation; ``indices`` selects a subset (``index`` is
  the position in the full split, ``sample_names``/``labels`` follow the subset).

Both are cheap to pickle and to fork: ``__init__`` reads only metadata (shapes,
num_frame, labels); the big arrays are memmaps opened lazily in each process and
dropped when pickled.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from torch.utils.data import Dataset

from feeder.io import lines_sha256, load_label_pkl, load_npy
from feeder.transforms import build_eval_transform, build_pretrain_transform, view_rng
from net.graph import Layout, get_layout

logger = logging.getLogger(__name__)

__all__ = ["PretrainDataset", "DownstreamDataset", "check_text_features"]

PathLike = Union[str, os.PathLike]
EMPTY_TEXT = np.zeros((0,), dtype=np.float32)


def _npy_shape(path: Path) -> Tuple[Tuple[int, ...], np.dtype]:
    """Shape and dtype from a ``.npy`` header without reading the data."""
    arr = load_npy(path, mmap_mode="r")
    shape, dtype = tuple(arr.shape), arr.dtype
    del arr
    return shape, dtype


def check_text_features(text_path: Path, data_path: Path, num_samples: int,
                        names: Optional[Sequence[str]] = None,
                        label_path: Optional[Path] = None) -> Tuple[int, ...]:
    """The (N, L, D) shape of a split's text features, refused unless they belong to its samples.

    Row ``i`` must hold sample ``i``'s description: N must equal the split's ``num_samples``, and when
    ``names`` (the split's ``*_label.pkl`` names) are given and ``data_gen/encode_text.py`` recorded the
    names it encoded (``names_sha256`` in the ``.json`` beside the ``.npy``), they must be the same names
    in the same order.  Features whose order cannot be checked (no names, no ``.json``, or one written
    before the names were recorded) are checked by N alone, with a warning naming the file.
    """
    text_path = Path(text_path)
    shape, _ = _npy_shape(text_path)
    if len(shape) != 3:
        raise ValueError(f"{text_path}: expected (N, L, D) text features, got shape {shape}")
    if shape[0] != num_samples:
        raise ValueError(f"text features {text_path} have N={shape[0]} samples but skeleton data {data_path} "
                         f"has N={num_samples}: they must be aligned with the split's sample order")
    meta_path = text_path.with_suffix(".json")
    recorded = None
    if names is not None and meta_path.is_file():
        try:
            recorded = json.loads(meta_path.read_text(encoding="utf-8")).get("names_sha256")
        except (OSError, ValueError, AttributeError) as err:
            raise ValueError(f"{meta_path}: unreadable text-feature metadata ({err}); rerun "
                             f"data_gen/encode_text.py for this split") from None
        if recorded is not None and recorded != lines_sha256(names):
            raise ValueError(f"text features {text_path} were encoded for other samples (or another order) than "
                             f"{label_path or data_path} lists: rerun data_gen/encode_text.py for this split")
    if recorded is None:
        why = ("no sample names given (no label file)" if names is None else
               f"no {meta_path.name} beside it" if not meta_path.is_file() else
               f"{meta_path.name} records no sample names (an older data_gen/encode_text.py)")
        logger.warning("text features %s: %s, so only their count (N=%d) is checked against %s, not that row i "
                       "is sample i; rerun data_gen/encode_text.py for this split to record the names",
                       text_path, why, num_samples, label_path or data_path)
    return tuple(shape)


class _SplitArrays(Dataset):
    """Shared metadata, validation and lazy memmap access for one split."""

    def __init__(self, data_path: PathLike, num_frame_path: PathLike, label_path: Optional[PathLike],
                 layout: Union[str, Layout], stream: str, window: int, use_mmap: bool = True) -> None:
        self.data_path = Path(data_path)
        self.num_frame_path = Path(num_frame_path)
        self.label_path = Path(label_path) if label_path is not None else None
        self.layout = get_layout(layout) if isinstance(layout, str) else layout
        self.stream = stream
        self.window = int(window)
        self.use_mmap = bool(use_mmap)

        shape, dtype = _npy_shape(self.data_path)
        if len(shape) != 5:
            raise ValueError(f"{self.data_path}: expected (N, C, T, V, M) skeleton data, got shape {shape}")
        if shape[3] != self.layout.num_joints:
            raise ValueError(f"{self.data_path}: V={shape[3]} joints but layout {self.layout.name} has "
                             f"{self.layout.num_joints}")
        self.data_shape = shape
        self.data_dtype = dtype
        n = shape[0]
        if n == 0:
            raise ValueError(f"{self.data_path}: the split holds no samples (its data_gen/ run matched no input "
                             f"file of this split: check its --dataset / --benchmark and input folder)")

        num_frame = load_npy(self.num_frame_path).reshape(-1)
        if len(num_frame) != n:
            raise ValueError(f"{self.num_frame_path} has {len(num_frame)} entries but {self.data_path} "
                             f"has N={n} samples")
        if not np.issubdtype(num_frame.dtype, np.integer):
            raise ValueError(f"{self.num_frame_path}: expected integer frame counts, got {num_frame.dtype}")
        if (num_frame < 1).any():
            bad = int(np.flatnonzero(num_frame < 1)[0])
            raise ValueError(f"{self.num_frame_path}: sample {bad} has num_frame={num_frame[bad]} (< 1)")
        if (num_frame > shape[2]).any():                  # data_gen caps num_frame at T: another conversion's file
            bad = int(np.flatnonzero(num_frame > shape[2])[0])
            raise ValueError(f"{self.num_frame_path}: sample {bad} has num_frame={num_frame[bad]} but "
                             f"{self.data_path} stores {shape[2]} frames per sample: the two files are of "
                             f"different data_gen/ runs; rerun the script that made them")
        self.num_frame = num_frame.astype(np.int64)

        if self.label_path is not None:
            names, labels = load_label_pkl(self.label_path)
            if len(labels) != n:
                raise ValueError(f"{self.label_path} has {len(labels)} samples but {self.data_path} has N={n}")
            self.all_sample_names = names
            self.all_labels = np.asarray(labels, dtype=np.int64)
        else:
            self.all_sample_names = None
            self.all_labels = None
        self._data = None

    # ------------------------------------------------------------ lazy arrays
    @property
    def data(self) -> np.ndarray:
        """The ``(N, C, T, V, M)`` array (a memmap, opened on first use in this process)."""
        if self._data is None:
            self._data = load_npy(self.data_path, mmap_mode="r" if self.use_mmap else None)
        return self._data

    def __getstate__(self) -> Dict[str, Any]:
        state = self.__dict__.copy()
        for key in ("_data", "_text"):
            if key in state:
                state[key] = None
        return state

    @property
    def storage_frames(self) -> int:
        return self.data_shape[2]


class PretrainDataset(_SplitArrays):
    """Two augmented views (+ text tokens) per sample for contrastive pretraining.

    Args:
        data_path, num_frame_path: the split's ``(N, C, T, V, M)`` array and ``(N,)`` valid frames.
        label_path: optional ``(names, labels)`` pickle, only checked for length.
        text_path: optional ``(N, L, D)`` text token features (float16 ``.npy``).
        layout: ``Layout`` or its name; stream: ``joint`` | ``bone`` | ``motion`` (converted
            on the fly after cropping; use ``joint`` when ``data_path`` already holds the stream).
        window: frames per view (64).
        transform: augmentation config dict (see :mod:`feeder.transforms`), ``None`` = paper defaults.
        seed: base seed of the per-view generators.
        return_raw: return the raw clip and ``num_frame`` instead of views (device augmentation).
        raw_params: with ``return_raw``, return the views' parameters (sampled in the worker)
            instead of ``num_frame``.
        use_mmap: memmap the data (``False`` loads it into RAM in each worker).
    """

    def __init__(self, data_path: PathLike, num_frame_path: PathLike, label_path: Optional[PathLike] = None,
                 text_path: Optional[PathLike] = None, layout: Union[str, Layout] = "ntu25",
                 stream: str = "joint", window: int = 64, transform: Optional[Mapping[str, Any]] = None,
                 seed: int = 0, return_raw: bool = False, raw_params: bool = False,
                 use_mmap: bool = True) -> None:
        super().__init__(data_path, num_frame_path, label_path, layout, stream, window, use_mmap)
        self.seed = int(seed)
        self.epoch = 0
        self.return_raw = bool(return_raw)
        self.raw_params = bool(raw_params)
        self.transform_cfg = dict(transform or {})
        self.pipeline = build_pretrain_transform(self.transform_cfg, self.layout, self.window, stream)
        spatial = [op.name for op in self.pipeline.ops if op.name in ("rotate", "shear", "scale")]
        if spatial and self.data_shape[1] != 3:           # else the first view that fires one fails in a worker
            raise ValueError(f"{self.data_path}: C={self.data_shape[1]} coordinate channels, but the augmentations "
                             f"{spatial} need 3 (x, y, z); remove them from augment.order for such data")
        self.text_path = Path(text_path) if text_path is not None else None
        self.text_shape = None
        if self.text_path is not None:
            self.text_shape = check_text_features(self.text_path, self.data_path, self.data_shape[0],
                                                  self.all_sample_names, self.label_path)
        self._text = None
        logger.info("PretrainDataset %s: %d samples, stream=%s, window=%d, text=%s", self.data_path,
                    len(self), stream, self.window, self.text_shape)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose views ``__getitem__`` draws (call before each epoch)."""
        self.epoch = int(epoch)

    @property
    def text(self) -> Optional[np.ndarray]:
        if self.text_path is None:
            return None
        if self._text is None:
            self._text = load_npy(self.text_path, mmap_mode="r" if self.use_mmap else None)
        return self._text

    def __len__(self) -> int:
        return self.data_shape[0]

    def _text_item(self, index: int) -> np.ndarray:
        text = self.text
        return EMPTY_TEXT if text is None else np.asarray(text[index], dtype=np.float32)

    def views(self, index: int, epoch: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
        """The two views of sample ``index`` for ``epoch`` (default: the current epoch)."""
        epoch = self.epoch if epoch is None else int(epoch)
        clip = self.data[index]
        nf = int(self.num_frame[index])
        return tuple(self.pipeline(clip, nf, view_rng(self.seed, epoch, index, view)) for view in (0, 1))

    def view_params(self, index: int, epoch: Optional[int] = None) -> list:
        """``[view0, view1]`` per-op parameter dicts of sample ``index`` (what the views are drawn with)."""
        epoch = self.epoch if epoch is None else int(epoch)
        nf = int(self.num_frame[index])
        return [self.pipeline.sample(view_rng(self.seed, epoch, index, view), nf, self.storage_frames)
                for view in (0, 1)]

    def __getitem__(self, index: int):
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        if self.return_raw:
            clip = np.array(self.data[index], dtype=np.float32)            # a writable copy
            second = self.view_params(index) if self.raw_params else self.num_frame[index]
            return clip, second, self._text_item(index), index
        v1, v2 = self.views(index)
        return v1, v2, self._text_item(index), index


class DownstreamDataset(_SplitArrays):
    """Centre-cropped clips with labels for linear / semi-supervised evaluation and inference.

    Args:
        data_path, num_frame_path, label_path: the split's files.
        layout, stream, window: as for :class:`PretrainDataset`.
        center_crop_ratio: fraction of the valid frames kept around the centre (0.95).
        indices: optional subset (positions in the full split), e.g. the semi-supervised 1 % subset.
        use_mmap: memmap the data.
        num_classes: when given, every label of the split must lie in ``[0, num_classes)``
            (a ValueError naming the label file otherwise, not an IndexError inside the loss).

    ``[i] -> (x (C, window, V, M) float32, label int, index)`` with ``index = indices[i]``.
    """

    def __init__(self, data_path: PathLike, num_frame_path: PathLike, label_path: PathLike,
                 layout: Union[str, Layout] = "ntu25", stream: str = "joint", window: int = 64,
                 center_crop_ratio: float = 0.95, indices: Optional[Sequence[int]] = None,
                 use_mmap: bool = True, num_classes: Optional[int] = None) -> None:
        super().__init__(data_path, num_frame_path, label_path, layout, stream, window, use_mmap)
        n = self.data_shape[0]
        if num_classes is not None:
            outside = np.flatnonzero((self.all_labels < 0) | (self.all_labels >= int(num_classes)))
            if len(outside):
                first = int(outside[0])
                raise ValueError(
                    f"{self.label_path}: {len(outside)} of {n} labels lie outside [0, {int(num_classes)}) "
                    f"(data.num_classes = {int(num_classes)}), the first {self.all_sample_names[first]!r} "
                    f"= {int(self.all_labels[first])}; labels span {int(self.all_labels.min())}.."
                    f"{int(self.all_labels.max())}: does the config's dataset match the data?")
        if indices is None:
            self.indices = np.arange(n, dtype=np.int64)
        else:
            self.indices = np.asarray(indices, dtype=np.int64).reshape(-1)
            if len(self.indices) and (self.indices.min() < 0 or self.indices.max() >= n):
                raise IndexError(f"indices must lie in [0, {n}) for {self.data_path}")
        self.pipeline = build_eval_transform({"center_crop_ratio": center_crop_ratio}, self.layout,
                                             self.window, stream)
        self.sample_names = [self.all_sample_names[i] for i in self.indices]
        self.labels = self.all_labels[self.indices]
        logger.info("DownstreamDataset %s: %d of %d samples, stream=%s", self.data_path, len(self), n, stream)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        index = int(self.indices[i])
        x = self.pipeline(self.data[index], int(self.num_frame[index]))
        return x, int(self.all_labels[index]), index
