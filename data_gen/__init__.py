"""Offline data-generation scripts (gendata, action images, descriptions, text features)."""
