"""Data preparation (python -m dataset.prepare) and the built-in moving-shapes data set.

The data folders themselves (kth_action/, penn_action/, ...) live beside these modules and
are not part of the repository.
"""
