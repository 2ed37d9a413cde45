"""Offline data preparation (python -m dataset.prepare) to the clip files a run reads; builds on
dataloader/, never the reverse. The data folders (kth_action/, ...) live here, outside git."""
