"""python -m dataset.prepare on videos: frames declared and decoded, gaps, frame times,
--hold_frames, --split_by, the report file; Hurricane and Penn split sources."""
import fractions
import json
import os
import sys

import av
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import main  # noqa: E402
from dataloader import build_loaders  # noqa: E402
from dataloader.npyfiles import list_clips  # noqa: E402
from dataset import prepare, splits  # noqa: E402
from dataloader import video as readers  # noqa: E402
from dataloader.video import Timeline  # noqa: E402
from dataset.sources import PrepareError  # noqa: E402
from dataset.timing import check, cut_clips, frame_sequence  # noqa: E402

RATE = 30
GAP_PTS = [p for p in range(30) if p not in (10, 11, 12, 20)]  # 26 frames on a grid of 30


def run(*argv):
    return prepare.prepare(prepare._parser().parse_args(list(argv) + ["--quiet"]))


def level(p):
    """The grey level of the frame shown at grid place p (identifies it after decoding)."""
    return (8 * p) % 256


def make_video(path, pts, codec="mjpeg", size=64, rate=RATE, time_base=None, b_frames=0, **options):
    """A video whose frame at time pts x time_base (1/rate by default) is uniformly grey
    level(pts). In an AVI, skipped pts become zero-length chunks (held frames) that the header
    counts; in an MP4 the header counts only the frames written. `options`: the encoder's."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    time_base = time_base or 1 / fractions.Fraction(rate)
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=rate, options=options)
        s.width = s.height = size
        s.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        s.time_base = s.codec_context.time_base = time_base
        s.codec_context.max_b_frames = b_frames
        if codec != "mjpeg":
            s.bit_rate = 20_000_000  # grey levels 8 apart stay apart
        for p in pts:
            f = av.VideoFrame.from_ndarray(np.full((size, size, 3), level(p), np.uint8), format="rgb24")
            f.pts, f.time_base = int(p), time_base
            for packet in s.encode(f):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
    return path


def grey(clip):
    """The grey level of each frame of a (T, H, W, 3) clip."""
    return np.rint(clip.reshape(len(clip), -1).mean(1)).astype(int)


def entries(dst):
    with open(os.path.join(dst, "prepare_report.json")) as f:
        rep = json.load(f)
    return rep, {os.path.basename(e["source"]): e for e in rep["sources"]}


def names(dst, split):
    folder = os.path.join(dst, split)
    return [os.path.basename(p)[:-4] for p in list_clips(folder)] if os.path.isdir(folder) else []


# --- declared and decoded frames, times, the report ---

def test_declared_decoded_report_and_times(tmp_path, capsys):
    src = tmp_path / "videos"
    make_video(src / "clean.avi", range(30))
    make_video(src / "held.avi", GAP_PTS)
    make_video(src / "skips.mp4", GAP_PTS, codec="mpeg4")
    # the fixtures: the AVI's header counts the held frames, the MP4's does not
    with av.open(str(src / "held.avi")) as c:
        assert c.streams.video[0].frames == 30
    with av.open(str(src / "skips.mp4")) as c:
        assert c.streams.video[0].frames == 26
    dst = tmp_path / "out"
    summary = run("custom", str(src), str(dst), "--size", "32", "--test_ratio", "0")
    out = capsys.readouterr().out
    rep, by = entries(dst)
    assert by["clean.avi"]["declared"] == 30 and by["clean.avi"]["decoded"] == 30
    assert not by["clean.avi"]["gap"] and by["clean.avi"]["status"] == "converted"
    held = by["held.avi"]
    assert (held["declared"], held["decoded"], held["on_grid"], held["missing"]) == (30, 26, 30, 4)
    assert held["gap"] and held["decoder"] == "pyav" and held["rate"] == 30
    mp4 = by["skips.mp4"]
    assert (mp4["declared"], mp4["decoded"], mp4["on_grid"], mp4["missing"], mp4["gap"]) == (26, 26, 30, 4, True)
    # whole videos with gaps are refused, with the option named, never written time-compressed
    assert held["status"] == mp4["status"] == "skipped" and "--hold_frames" in held["reason"]
    assert sorted(names(dst, "train") + names(dst, "test")) == ["clean"]
    assert len(summary["skipped"]) == 2
    assert "pyav: 30 frames declared, 26 decoded, 30 on the 30 fps grid; GAP: 4 missing (13.3%)" in out
    assert "pyav: 26 frames declared, 26 decoded, 30 on the 30 fps grid; GAP: 4 missing" in out
    assert "2 with gaps" in out
    assert rep["options"]["hold_frames"] is False and rep["preparation"] == "custom"
    assert not [n for n in os.listdir(dst) if ".tmp" in n]
    # the times file: float64 seconds, pts * time_base, beside the clip
    split = "train" if names(dst, "train") else "test"
    times = np.load(dst / split / "clean.times.npy")
    assert times.dtype == np.float64 and np.allclose(times, np.arange(30) / RATE)
    assert np.load(dst / split / "clean.npy").shape == (30, 32, 32, 3)


def test_hold_frames_puts_clips_on_the_grid(tmp_path, capsys):
    src = tmp_path / "videos"
    make_video(src / "held.avi", GAP_PTS)
    make_video(src / "skips.mp4", GAP_PTS, codec="mpeg4")
    make_video(src / "clean.avi", range(30))
    dst = tmp_path / "held"
    run("custom", str(src), str(dst), "--size", "0", "--clip_len", "10", "--hold_frames",
        "--split_by", "clip", "--test_ratio", "0.3")
    rep, by = entries(dst)
    for video in ("held", "skips"):
        e = by[f"{video}.avi" if video == "held" else "skips.mp4"]
        assert e["held"] == 4 and e["refused"] == 0 and e["clips"] == 3
        got = []
        for k in range(3):
            split = "test" if k == 2 else "train"  # ceil(0.3 x 3) = 1: the last clip
            clip = np.load(dst / split / f"{video}_{k:04d}.npy")
            times = np.load(dst / split / f"{video}_{k:04d}.times.npy")
            assert clip.shape == (10, 64, 64, 3)
            assert np.allclose(times, np.arange(10 * k, 10 * k + 10) / RATE)
            got += list(grey(clip))
        # places 10-12 hold frame 9, place 20 holds frame 19
        shown = [p if p in GAP_PTS else max(q for q in GAP_PTS if q < p) for p in range(30)]
        assert np.abs(np.array(got) - [level(p) for p in shown]).max() <= 2
    assert "--hold_frames repeated 4" in capsys.readouterr().out


def test_without_hold_frames_clips_with_gaps_are_refused(tmp_path, capsys):
    src = tmp_path / "videos"
    make_video(src / "held.avi", GAP_PTS)
    dst = tmp_path / "out"
    summary = run("custom", str(src), str(dst), "--size", "0", "--clip_len", "10", "--test_ratio", "0")
    # 26 decoded frames: clip 0 (places 0-9) is whole, clip 1 (places 13-23) skips place 20
    assert names(dst, "train") == ["held_0000"] and not summary["skipped"]
    clip = np.load(dst / "train" / "held_0000.npy")
    assert np.abs(grey(clip) - [level(p) for p in range(10)]).max() <= 2
    rep, by = entries(dst)
    assert by["held.avi"]["refused"] == 1 and by["held.avi"]["clips"] == 2
    assert "--hold_frames" in by["held.avi"]["refused_reason"]
    assert "1 of 2 clips refused" in capsys.readouterr().out
    # a video all of whose clips skip frames is skipped, the option named
    make_video(src / "held.avi", [0, 2, 4, 6, 8, 10, 12, 14, 16, 18])
    with pytest.raises(PrepareError, match="nothing could be converted"):
        run("custom", str(src), str(tmp_path / "out2"), "--size", "0", "--clip_len", "5")
    assert "--hold_frames repeats held frames instead" in capsys.readouterr().out


def test_kth_hold_frames(tmp_path):
    src = tmp_path / "kth"
    make_video(src / "person01_walking_d1_uncomp.avi", GAP_PTS)
    make_video(src / "person18_walking_d1_uncomp.avi", range(20))
    dst = tmp_path / "a"
    summary = run("kth", str(src), str(dst))
    assert "--hold_frames" in summary["skipped"][0][1] and names(dst, "train") == []
    run("kth", str(src), str(tmp_path / "b"), "--hold_frames")
    assert len(np.load(tmp_path / "b" / "train" / "person01_walking_d1.npy")) == 30
    assert np.allclose(np.load(tmp_path / "b" / "test" / "person18_walking_d1.times.npy"),
                       np.arange(20) / RATE)


# --- real containers: 1001-denominator rates, B-frames, VFR, zero-length chunks ---

NTSC_FILM = fractions.Fraction(24000, 1001)  # 23.976 fps


def test_real_containers_all_frames_present_write_all_clips(tmp_path, capsys):
    src = tmp_path / "videos"
    jitter = np.random.default_rng(0).uniform(-0.3, 0.3, 96)
    make_video(src / "xvid.avi", range(96), "mpeg4", rate=NTSC_FILM, b_frames=2, vtag="XVID")
    make_video(src / "h264.mp4", range(96), "libx264", rate=NTSC_FILM, bf="2")
    # an AVI stores no presentation times: its B-frames come with decode-order times
    make_video(src / "h264_avi.avi", range(96), "libx264", rate=NTSC_FILM, bf="2")
    # a phone's clock: 30 fps, +-0.3 frame of jitter, 1/90000 time base (its mean rate: 29.94)
    make_video(src / "vfr.mp4", np.rint((np.arange(96) + jitter) * 3000), "libx264",
               time_base=fractions.Fraction(1, 90000))
    # a phone in low light: 30 fps, then 15 fps for 12 frames (held: 12 slots missing), then 30
    slow = np.concatenate([np.arange(24), 24 + 2 * np.arange(12), 48 + np.arange(48)])
    make_video(src / "vfr_slow.mp4", slow * 3000, "libx264", time_base=fractions.Fraction(1, 90000))
    # held frames: zero-length chunks at places 30, 31 and 60 of an XviD AVI
    make_video(src / "held.avi", [p for p in range(96) if p not in (30, 31, 60)], "mpeg4",
               rate=NTSC_FILM, vtag="XVID")
    with av.open(str(src / "h264.mp4")) as c:
        assert c.streams.video[0].codec_context.has_b_frames
    with av.open(str(src / "h264_avi.avi")) as c:  # the fixture: frames leave the decoder out of pts order
        pts = [f.pts for f in c.decode(video=0)]
    assert pts != sorted(pts)
    dst = tmp_path / "out"
    run("custom", str(src), str(dst), "--size", "16", "--clip_len", "24", "--split_by", "clip",
        "--test_ratio", "0.25")
    out = capsys.readouterr().out
    rep, by = entries(dst)
    counts = {n: (e["declared"], e["decoded"], e["on_grid"], e["missing"], e["refused"]) for n, e in by.items()}
    assert counts == {"xvid.avi": (96, 96, 96, 0, 0), "h264.mp4": (96, 96, 96, 0, 0),
                      "h264_avi.avi": (96, 96, 96, 0, 0), "vfr.mp4": (96, 96, 96, 0, 0),
                      "vfr_slow.mp4": (84, 84, 96, 12, 1), "held.avi": (96, 93, 96, 3, 2)}
    assert "out of presentation order" in by["h264_avi.avi"]["fallback"]
    assert by["xvid.avi"]["rate"] == by["h264.mp4"]["rate"] == round(24000 / 1001, 6)
    written = names(dst, "train") + names(dst, "test")
    for video in ("xvid", "h264", "h264_avi", "vfr"):  # every clip, the last of each in test
        assert sorted(n for n in written if n[:-5] == video) == [f"{video}_{k:04d}" for k in range(4)]
        assert f"{video}_0003" in names(dst, "test")
    # the AVI's frames in presentation order, with the sorted times; the phone's own times kept
    clip = np.load(dst / "train" / "h264_avi_0001.npy")
    assert np.abs(grey(clip) - [level(p) for p in range(24, 48)]).max() <= 4
    assert np.allclose(np.diff(np.load(dst / "train" / "h264_avi_0001.times.npy")), 1001 / 24000)
    vfr_times = np.load(dst / "train" / "vfr_0001.times.npy")
    assert np.allclose(np.diff(vfr_times), np.diff(np.rint((np.arange(24, 48) + jitter[24:48]) * 3000)) / 90000)
    # held frames and the slow stretch stay flagged; each refused clip says what it lacks
    assert by["held.avi"]["gap"] and by["held.avi"]["lacking"] == {"held_0001": 2, "held_0002": 1}
    assert "2 of 3 clips refused, frames lacking: held_0001: 2, held_0002: 1 (--hold_frames" in out
    assert by["vfr_slow.mp4"]["gap"] and by["vfr_slow.mp4"]["lacking"] == {"vfr_slow_0001": 12}
    assert sorted(n for n in written if n.startswith("vfr_slow")) == ["vfr_slow_0000", "vfr_slow_0002"]


def test_frame_sequence_repeats_and_drops():
    # places 0, 1, 1, 2, 5: a frame whose next timestamp is k intervals later appears k times
    tl = Timeline(5, np.array([0, 1, 1, 2, 5]) / 10.0, 10.0, None, "pyav")
    index, times, skipped = frame_sequence(tl, hold=True)
    assert index.tolist() == [0, 2, 3, 3, 3, 4] and np.allclose(times, np.arange(6) / 10)
    assert check(tl) == {"declared": None, "decoded": 5, "rate": 10.0, "on_grid": 6, "missing": 2,
                         "duplicates": 1, "gap": True}
    index, times, skipped = frame_sequence(tl, hold=False)
    assert index.tolist() == [0, 1, 2, 3, 4] and skipped.tolist() == [0, 0, 0, 0, 2]
    assert [c.missing for c in cut_clips(tl, 2, hold=False)] == [0, 0]  # frames 0-1, 2-3
    assert [c.missing for c in cut_clips(tl, 0, hold=False)] == [2]
    # trailing held frames that only the header counts are held too
    tl = Timeline(3, np.array([0.0, 0.1, 0.2]), 10.0, 5, "pyav")
    assert frame_sequence(tl, hold=True)[0].tolist() == [0, 1, 2, 2, 2]
    assert check(tl)["missing"] == 2


def test_opencv_fallback_is_reported(tmp_path, monkeypatch):
    src = tmp_path / "videos"
    make_video(src / "held.avi", GAP_PTS)
    monkeypatch.setattr(readers, "_open_pyav", lambda path: (None, "PyAV cannot open it (test)"))
    dst = tmp_path / "out"
    run("custom", str(src), str(dst), "--size", "0", "--hold_frames", "--test_ratio", "0")
    rep, by = entries(dst)
    e = by["held.avi"]
    assert e["decoder"] == "opencv" and e["fallback"] == "PyAV cannot open it (test): read with OpenCV"
    assert (e["declared"], e["decoded"], e["missing"], e["held"]) == (30, 26, 4, 4)
    assert len(np.load(dst / "train" / "held.npy")) == 30


def test_gif_durations_kept_and_marked(tmp_path, capsys):
    from PIL import Image
    src = tmp_path / "gifs"
    os.makedirs(src)
    imgs = [Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)) for i in range(4)]
    imgs[0].save(src / "g.gif", save_all=True, append_images=imgs[1:], duration=[40, 40, 120, 40], loop=0)
    dst = tmp_path / "out"
    run("mgif", str(src), str(dst), "--test_ratio", "0")
    assert np.allclose(np.load(dst / "train" / "g.times.npy"), [0, 0.04, 0.08, 0.2])
    rep, by = entries(dst)
    assert by["g.gif"]["variable_durations"] and by["g.gif"]["decoder"] == "pil"
    assert "frames last unequally" in capsys.readouterr().out


def test_rerun_keeps_the_report_and_warns_of_changed_options(tmp_path, capsys):
    src = tmp_path / "videos"
    make_video(src / "a.avi", range(12))
    make_video(src / "b.avi", range(12))
    dst = tmp_path / "out"
    run("custom", str(src), str(dst), "--size", "0")
    capsys.readouterr()
    run("custom", str(src), str(dst), "--size", "0", "--hold_frames")
    out = capsys.readouterr().out
    assert "was prepared with other options (--hold_frames False -> True)" in out
    rep, by = entries(dst)
    assert by["a.avi"]["status"] == "present" and by["a.avi"]["declared"] == 12


def test_loader_ignores_times_files(tmp_path):
    folder = tmp_path / "clips"
    os.makedirs(folder)
    np.save(folder / "a.npy", np.zeros((4, 8, 8, 3), np.uint8))
    np.save(folder / "a.times.npy", np.arange(4) / 30.0)
    assert list_clips(str(folder)) == [str(folder / "a.npy")]
    # a prepared folder with times files trains as before
    src = tmp_path / "videos"
    for i in range(3):
        make_video(src / f"v{i}.avi", range(16))
    run("custom", str(src), str(tmp_path / "data" / "mine"), "--size", "32", "--clip_len", "8",
        "--split_by", "clip", "--test_ratio", "0.5")
    opt = main.get_opt(["--dataset", "custom", "--data_root", str(tmp_path / "data"), "--custom_root",
                        "mine", "-b", "3", "-j", "0", "--input_size", "32", "--sample_size", "8"])
    train_loader, test_loader = build_loaders(opt)
    assert len(train_loader.dataset) == 3 and len(test_loader.dataset) == 3


# --- splits ---

@pytest.fixture
def three_videos(tmp_path):
    src = tmp_path / "videos"
    make_video(src / "a.avi", range(40), size=16)  # 10 clips of 4
    make_video(src / "b.avi", range(20), size=16)  # 5
    make_video(src / "c.avi", range(16), size=16)  # 4
    return src


def test_split_by_video_table_and_warning(three_videos, tmp_path, capsys):
    dst = tmp_path / "by_video"
    run("custom", str(three_videos), str(dst), "--size", "16", "--clip_len", "4")
    out = capsys.readouterr().out
    # the closest whole-video share to 10%: c alone, 4 of 19 clips (21%)
    assert names(dst, "test") == [f"c_{k:04d}" for k in range(4)]
    assert len(names(dst, "train")) == 15
    assert "split by video (--test_ratio 0.1, --seed 0): test 4 of 19 clips (21.1%)" in out
    rows = [ln.split() for ln in out.splitlines() if ln.startswith("  ") and ln.split()[0] in "abc"]
    assert rows == [["a", "40", "10", "train"], ["b", "20", "5", "train"], ["c", "16", "4", "test"]]
    assert "warning: the test split holds 21.1% of the clips" in out
    assert "--split_by clip gives 15.8%" in out
    rep, _ = entries(dst)
    assert rep["split"]["by"] == "video" and rep["split"]["test_clips"] == 4
    assert [v["test_clips"] for v in rep["split"]["videos"]] == [0, 0, 4]


def test_split_by_clip(three_videos, tmp_path, capsys):
    dst = tmp_path / "by_clip"
    run("custom", str(three_videos), str(dst), "--size", "16", "--clip_len", "4", "--split_by", "clip",
        "--test_ratio", "0.2")
    out = capsys.readouterr().out
    # ceil(0.2 x 10) = 2, ceil(0.2 x 5) = 1, ceil(0.2 x 4) = 1: the last clips of each video
    assert names(dst, "test") == ["a_0008", "a_0009", "b_0004", "c_0003"]
    assert len(names(dst, "train")) == 15
    assert "a  " in out and "8 train, 2 test" in out and "warning" not in out
    assert np.allclose(np.load(dst / "test" / "a_0009.times.npy"), np.arange(36, 40) / RATE)
    with pytest.raises(PrepareError, match="give --clip_len N"):
        run("custom", str(three_videos), str(tmp_path / "x"), "--split_by", "clip")


def test_split_counts_only_clips_written_and_test_is_never_empty(tmp_path, capsys):
    src = tmp_path / "videos"
    make_video(src / "a.avi", range(40), size=16)
    make_video(src / "held.avi", range(0, 80, 2), size=16)  # every clip skips frames: none written
    dst = tmp_path / "out"
    # one video with clips to write cannot give both splits: an error naming the fixes, nothing written
    assert prepare.main(["custom", str(src), str(dst), "--clip_len", "10", "--size", "16", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "the test split is empty (videos with clips to write: 1 of 2)" in err
    assert "give more videos" in err and "--split_by clip" in err and not os.path.exists(dst)
    make_video(src / "b.avi", range(20), size=16)
    run("custom", str(src), str(dst), "--clip_len", "10", "--size", "16", "--test_ratio", "0.3")
    out = capsys.readouterr().out
    rows = [ln.split() for ln in out.splitlines() if ln.startswith("  ") and ln.split()[0] in ("a", "b", "held")]
    assert rows == [["a", "40", "4", "train"], ["b", "20", "2", "test"], ["held", "40", "0", "-"]]
    assert names(dst, "test") == ["b_0000", "b_0001"] and len(names(dst, "train")) == 4
    # the same with whole splits given by the source: an empty test split fails the run too
    kth = tmp_path / "kth"
    make_video(kth / "person01_walking_d1_uncomp.avi", range(12), size=16)
    assert prepare.main(["kth", str(kth), str(tmp_path / "k"), "--quiet"]) == 2
    assert "the test split is empty" in capsys.readouterr().err
    # two sources that would share an output name are refused, not one of them lost
    make_video(src / "a.mp4", range(12), codec="mpeg4", size=16)
    with pytest.raises(PrepareError, match=r"a.avi and .*a.mp4 would both be written as a: rename one"):
        run("custom", str(src), str(tmp_path / "x"), "--clip_len", "10")


def test_video_test_set_search():
    # the three videos cut into 30-frame clips: the largest no longer becomes the test set
    clips = {"a": 795 // 30, "b": 444 // 30, "c": 270 // 30}
    assert splits.video_test_set(clips, 0.1, 0) == {"c"}
    assert splits.video_test_set(clips, 0.55, 0) == {"a"}  # 26 of 49 is the closest to 26.95
    assert splits.video_test_set(clips, 0.5, 0) == {"b", "c"}  # 23 and 26 tie for 24.5: the fewer
    # equal videos: the seed chooses which, the share stays exact
    eq = {n: 5 for n in "abcdefgh"}
    picks = {frozenset(splits.video_test_set(eq, 0.25, s)) for s in range(6)}
    assert all(len(p) == 2 for p in picks) and len(picks) > 1
    assert splits.video_test_set(eq, 0.25, 3) == splits.video_test_set(eq, 0.25, 3)
    # at least one train and one test video; none at ratio 0; videos without clips stay out
    assert splits.video_test_set({"a": 10, "b": 1}, 0.9, 0) == {"a"}
    assert splits.video_test_set({"a": 10, "b": 1}, 0.0, 0) == set()
    assert splits.video_test_set({"a": 10, "b": 0, "c": 3}, 0.2, 0) == {"c"}
    assert splits.clip_test_count(30, 0.1) == 3 and splits.clip_test_count(1, 0.1) == 1


def test_split_folders_kept(tmp_path, capsys):
    src = tmp_path / "src"
    make_video(src / "train" / "a.avi", range(8), size=16)
    make_video(src / "test" / "b.avi", range(8), size=16)
    run("custom", str(src), str(tmp_path / "out"), "--size", "16", "--clip_len", "4", "--split_by", "clip")
    assert "they are kept, --split_by clip does not apply" in capsys.readouterr().out
    assert names(tmp_path / "out", "test") == ["b_0000", "b_0001"]


# --- Hurricane and Penn ---

def test_hurricane_split_by_path_component(tmp_path, capsys):
    src = tmp_path / "hur"
    rng = np.random.default_rng(0)
    for rel, n in [("contest/a.npy", 3), ("train/b.npy", 2), ("test/c.npy", 2),
                   ("storms_test_2005.npy", 1), ("contest.npy", 1)]:
        os.makedirs(os.path.dirname(src / rel), exist_ok=True)
        np.save(src / rel, rng.normal(size=(n, 4, 6, 6, 3)).astype(np.float32))
    dst = tmp_path / "H"
    run("hurricane", str(src), str(dst), "--test_ratio", "0")
    assert names(dst, "test") == ["storms_test_2005_00000", "test__c_00000", "test__c_00001"]
    assert names(dst, "train") == ["contest_00000", "contest__a_00000", "contest__a_00001",
                                   "contest__a_00002", "train__b_00000", "train__b_00001"]
    assert "4 of 9 sequences have no train/test in their path" in capsys.readouterr().out
    np.save(src / "train_test.npy", np.zeros((1, 4, 6, 6, 3), np.float32))
    with pytest.raises(PrepareError, match="says both train and test"):
        run("hurricane", str(src), str(tmp_path / "H2"))


def test_penn_unreadable_label_is_reported(tmp_path, capsys):
    import cv2
    from scipy.io import savemat
    src = tmp_path / "Penn_Action"
    for i in (1, 2, 3):
        os.makedirs(src / "frames" / f"{i:04d}")
        for k in range(5):
            cv2.imwrite(str(src / "frames" / f"{i:04d}" / f"{k + 1:06d}.jpg"), np.full((20, 30, 3), 50 * k, np.uint8))
    os.makedirs(src / "labels")
    savemat(src / "labels" / "0001.mat", {"train": np.array([[1]])})
    (src / "labels" / "0002.mat").write_bytes(b"MATLAB 5.0 MAT-file, truncated")
    savemat(src / "labels" / "0003.mat", {"nframes": np.array([[5]])})  # no train flag
    dst = tmp_path / "penn"
    run("penn", str(src), str(dst), "--size", "16", "--test_ratio", "0")
    out = capsys.readouterr().out
    assert f"cannot read the train flag of {src / 'labels' / '0002.mat'} (" in out
    assert f"cannot read the train flag of {src / 'labels' / '0003.mat'} (it has no 'train' field)" in out
    assert "no readable train flag for 2 of 3 videos" in out
    rep, by = entries(dst)
    assert by["0001"]["split_from"] == "label"
    assert by["0002"]["split_from"].startswith(f"seeded ({src / 'labels' / '0002.mat'}: ")
    assert by["0002"]["decoder"] == "images" and by["0002"]["decoded"] == 5


def test_frames_of_different_sizes_are_refused_not_resized(tmp_path):
    import cv2
    folder = tmp_path / "clip"
    folder.mkdir()
    cv2.imwrite(str(folder / "000.png"), np.zeros((32, 48, 3), np.uint8))
    cv2.imwrite(str(folder / "001.png"), np.zeros((32, 48, 3), np.uint8))
    cv2.imwrite(str(folder / "002.png"), np.zeros((40, 48, 3), np.uint8))
    with pytest.raises(readers.SkipItem, match=r"frame 2 is 48x40 but frame 0 is 48x32"):
        readers.decode_frame_folder(str(folder))
