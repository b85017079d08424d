"""Processors: the YAML-configured jobs that ``main.py`` runs (pretraining, evaluations, fusion, reports)."""
