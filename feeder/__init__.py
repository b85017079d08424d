"""Skeleton data: array operations, augmentations, datasets and atomic file I/O."""
