"""Train/test splits for sources that come without one: a seeded share of names (Penn, Hurricane),
or for videos cut into clips (custom, mgif) --split_by video or clip (docs/data.md, "Splits")."""
import math

import numpy as np

SPLIT_BY = ("video", "clip")
TABLE_ROWS = 40  # rows printed; the report holds them all


def seeded_split(names, test_ratio, seed):
    """{name: 'train' | 'test'}: a seeded random share `test_ratio` goes to test."""
    names = sorted(names)
    n_test = int(round(len(names) * test_ratio))
    if test_ratio > 0 and len(names) >= 2:
        n_test = min(max(n_test, 1), len(names) - 1)
    test = {names[i] for i in np.random.default_rng(seed).permutation(len(names))[:n_test]}
    return {n: "test" if n in test else "train" for n in names}


def clip_test_count(n_clips: int, test_ratio: float) -> int:
    """--split_by clip: the last ceil(test_ratio x n_clips) clips of a video go to test."""
    return min(n_clips, max(0, math.ceil(test_ratio * n_clips - 1e-9)))


def video_test_set(clips: dict[str, int], test_ratio: float, seed: int) -> set:
    """The test videos whose share of clips is the closest to test_ratio (one of each split when two
    or more): an exact subset-sum search over bitsets, the seed picking among equal sums."""
    names = sorted(n for n, c in clips.items() if c > 0)
    if test_ratio <= 0 or not names:
        return set()
    order = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
    reach = [1]  # reach[i]: bit s set when the first i videos have a subset of s clips
    for n in order:
        reach.append(reach[-1] | (reach[-1] << clips[n]))
    total = sum(clips[n] for n in names)
    sums = [s for s, b in enumerate(bin(reach[-1])[:1:-1]) if b == "1"]  # the bits, lowest first
    if len(names) >= 2:
        sums = [s for s in sums if 0 < s < total]
    test, s = set(), min(sums, key=lambda s: (abs(s - test_ratio * total), s))  # the best sum
    for i in range(len(order), 0, -1):
        if not (reach[i - 1] >> s) & 1:  # not reachable without video i: it is in the subset
            test.add(order[i - 1])
            s -= clips[order[i - 1]]
    return test


def empty_test(why: str, fix: str = "give more videos, or cut them into clips and put the last "
               "clips of every video in test (--clip_len N --split_by clip)") -> str:
    """The error of a preparation whose test split would be empty (a run could not evaluate)."""
    return f"the test split is empty ({why}), so a run would have nothing to evaluate on: {fix}"


def plan(videos: list[tuple[str, int, int]], by: str, test_ratio: float, seed: int) -> dict[str, int]:
    """{video: its test clips} for videos [(name, frames, clips)] split `by` video or clip."""
    clips = {n: c for n, _, c in videos}
    if by == "clip":
        return {n: clip_test_count(c, test_ratio) for n, c in clips.items()}
    test = video_test_set(clips, test_ratio, seed)
    return {n: c if n in test else 0 for n, c in clips.items()}


def _share(test_clips, videos):
    total = sum(c for _, _, c in videos)
    return (sum(test_clips.values()) / total) if total else 0.0, total


def describe(videos, test_clips, by, test_ratio, seed, clip_len) -> dict:
    """Print the split table (and a warning when far from test_ratio); the report's record."""
    share, total = _share(test_clips, videos)
    n_test = sum(test_clips.values())
    rows = [{"video": n, "frames": f, "clips": c, "test_clips": test_clips[n]} for n, f, c in videos]
    print(f"split by {by} (--test_ratio {test_ratio}, --seed {seed}): test {n_test} of {total} "
          f"clips ({100 * share:.1f}%)")
    width = max([len("video")] + [len(r["video"]) for r in rows[:TABLE_ROWS]])
    print(f"  {'video':<{width}}  {'frames':>7}  {'clips':>6}  split")
    for r in rows[:TABLE_ROWS]:
        c, t = r["clips"], r["test_clips"]
        where = ("-" if not c else "test" if t == c else "train" if not t
                 else f"{c - t} train, {t} test")
        print(f"  {r['video']:<{width}}  {r['frames']:>7}  {c:>6}  {where}")
    if len(rows) > TABLE_ROWS:
        print(f"  ... and {len(rows) - TABLE_ROWS} more videos (all in prepare_report.json)")
    record = {"by": by, "test_ratio": test_ratio, "seed": seed, "test_clips": n_test,
              "clips": total, "test_share": share, "videos": rows, "warning": None}
    if test_ratio > 0 and total and (share > 2 * test_ratio or share < 0.5 * test_ratio):
        other = "clip" if by == "video" else "video"
        if other == "clip" and not clip_len:
            alt = ("cut the videos into clips (--clip_len N) and use --split_by clip, which puts "
                   "the last clips of every video in test")
        else:
            alt_share, _ = _share(plan(videos, other, test_ratio, seed), videos)
            alt = f"--split_by {other} gives {100 * alt_share:.1f}%"
        far = "more than twice" if share > 2 * test_ratio else "less than half"
        record["warning"] = (f"the test split holds {100 * share:.1f}% of the clips, far from "
                             f"--test_ratio {test_ratio} ({far}); {alt}")
        print(f"warning: {record['warning']}")
    return record
