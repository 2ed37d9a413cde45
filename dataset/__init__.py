"""Offline data preparation (python -m dataset.prepare): public releases and a user's videos
converted to the clip files a run reads. Builds on dataloader/ (what a run reads), never the
reverse; the built-in moving-shapes data set lives in dataloader/shapes.py.

The data folders themselves (kth_action/, penn_action/, ...) live beside these modules and
are not part of the repository.
"""
