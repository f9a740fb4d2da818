"""Frame-level scores and metrics (vad_pipeline.evaluate)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vad_pipeline import evaluate as E
from vad_pipeline.datasets import Video
from vad_pipeline.io import VadError

# --------------------------------------------------------------------------- ROC / AUC / AP / EER


def test_roc_curve_hand_computed():
    fpr, tpr, thr = E.roc_curve(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])
    np.testing.assert_allclose(thr, [np.inf, 0.8, 0.4, 0.35, 0.1])


def test_auc_hand_computed():
    assert E.auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)


def test_auc_perfect_and_inverted():
    y = np.array([0, 0, 0, 1, 1])
    assert E.auc(y, [0.1, 0.2, 0.3, 0.8, 0.9]) == pytest.approx(1.0)
    assert E.auc(y, [0.9, 0.8, 0.7, 0.2, 0.1]) == pytest.approx(0.0)
    assert E.eer(y, [0.1, 0.2, 0.3, 0.8, 0.9]) == pytest.approx(0.0)
    assert E.average_precision(y, [0.1, 0.2, 0.3, 0.8, 0.9]) == pytest.approx(1.0)


def test_ties_are_one_threshold():
    y = np.array([0, 1, 0, 1, 1, 0])
    s = np.full(6, 0.3)
    fpr, tpr, _ = E.roc_curve(y, s)
    np.testing.assert_allclose(fpr, [0, 1])
    np.testing.assert_allclose(tpr, [0, 1])
    assert E.auc(y, s) == pytest.approx(0.5)
    assert E.eer(y, s) == pytest.approx(0.5)
    assert E.average_precision(y, s) == pytest.approx(0.5)  # precision at the only threshold


def test_partial_ties_count_half():
    # one positive tied with one negative, everything else separated: 3 of 4 pairs + half a pair
    y = [0, 0, 1, 1]
    s = [0.1, 0.5, 0.5, 0.9]
    assert E.auc(y, s) == pytest.approx(0.875)


def test_eer_hand_computed():
    # negatives .1 .2 .3 .7, positives .6 .8 .9 .95: at threshold .6, FPR = FNR = 1/4
    y = [0, 0, 0, 0, 1, 1, 1, 1]
    s = [0.1, 0.2, 0.3, 0.7, 0.6, 0.8, 0.9, 0.95]
    assert E.eer(y, s) == pytest.approx(0.25)
    assert E.auc(y, s) == pytest.approx(15 / 16)


def test_average_precision_hand_computed():
    # ranking P N P N: precision 1 at recall 1/2, 2/3 at recall 1
    assert E.average_precision([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.6]) == pytest.approx(0.5 + 0.5 * 2 / 3)


# Figures of the hand-written ROC/AUC/AP/EER (before the switch to scikit-learn), pinned to 1e-12
# on fixed examples with ties: the metrics of every earlier run keep their values.
PIN_Y = np.array([0, 1, 0, 0, 1, 1, 0, 1, 0, 0, 1, 0])
PIN_S = np.array([0.2, 0.9, 0.4, 0.4, 0.4, 0.7, 0.1, 0.9, 0.55, 0.3, 0.3, 0.9])


def test_metrics_pinned_on_a_fixed_example_with_ties():
    assert E.auc(PIN_Y, PIN_S) == pytest.approx(0.7285714285714285, abs=1e-12)
    assert E.average_precision(PIN_Y, PIN_S) == pytest.approx(0.6166666666666666, abs=1e-12)
    assert E.eer(PIN_Y, PIN_S) == pytest.approx(0.3529411764705882, abs=1e-12)
    fpr, tpr, thr = E.roc_curve(PIN_Y, PIN_S)
    np.testing.assert_allclose(fpr, [0, 1 / 7, 1 / 7, 2 / 7, 4 / 7, 5 / 7, 6 / 7, 1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(tpr, [0, 0.4, 0.6, 0.6, 0.8, 1, 1, 1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(thr, [np.inf, 0.9, 0.7, 0.55, 0.4, 0.3, 0.2, 0.1], rtol=0, atol=1e-12)


def test_metrics_pinned_on_a_seeded_example_with_many_ties():
    rng = np.random.default_rng(16)
    y = rng.random(500) < 0.25
    s = np.round(y * 0.8 + rng.normal(size=500), 1)  # 53 distinct values among 500
    assert E.auc(y, s) == pytest.approx(0.690736403851158, abs=1e-12)
    assert E.average_precision(y, s) == pytest.approx(0.42395161578592777, abs=1e-12)
    assert E.eer(y, s) == pytest.approx(0.3774531181857828, abs=1e-12)


def test_eer_is_where_fpr_meets_fnr_on_random_data():
    rng = np.random.default_rng(3)
    y = rng.random(500) < 0.4
    s = y * 1.0 + rng.normal(size=500)
    e = E.eer(y, s)
    fpr, tpr, _ = E.roc_curve(y, s)
    # the EER lies between FPR and FNR at the thresholds where they cross
    i = int(np.argmin(np.abs(fpr - (1 - tpr))))
    assert abs(e - fpr[i]) < 0.02
    assert 0.0 < e < 0.5


# --------------------------------------------------------------------------- frame_scores


def _cfg(**over) -> dict:
    p = {"fill": "min", "exclude_first": 0, "smoothing": 0, "per_video": "none"}
    p.update(over)
    return {"frame_scores": p}


def _labels(n_per_video: dict[str, int], abnormal: dict[str, list[int]] | None = None) -> pd.DataFrame:
    rows = []
    for v, n in n_per_video.items():
        for t in range(n):
            rows.append((v, t, int(t in (abnormal or {}).get(v, []))))
    return pd.DataFrame(rows, columns=["video", "frame", "label"])


def _objects(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["video", "frame", "score"])


def test_frame_score_is_max_over_objects():
    labels = _labels({"01": 4})
    objects = _objects([("01", 1, 0.2), ("01", 1, 0.9), ("01", 1, 0.5), ("01", 2, -1.0), ("01", 3, 3.0)])
    df = E.frame_scores(objects, labels, _cfg(fill=-7.0))
    assert list(df["frame"]) == [0, 1, 2, 3]
    np.testing.assert_allclose(df["score"], [-7.0, 0.9, -1.0, 3.0])
    assert list(df["n_objects"]) == [0, 3, 1, 1]
    assert list(df.columns) == ["video", "frame", "score", "label", "n_objects", "excluded", "camera"]
    assert (df["camera"] == "all").all()   # one camera unless the dataset says otherwise


def test_fill_min_is_lowest_object_score_of_the_dataset():
    labels = _labels({"01": 3, "02": 3})
    objects = _objects([("01", 0, 0.5), ("02", 1, -2.5), ("02", 2, 4.0)])
    df = E.frame_scores(objects, labels, _cfg(fill="min"))
    got = df.set_index(["video", "frame"])["score"]
    assert got[("01", 1)] == -2.5 and got[("01", 2)] == -2.5 and got[("02", 0)] == -2.5
    assert got[("01", 0)] == 0.5 and got[("02", 2)] == 4.0


def test_numeric_fill():
    labels = _labels({"01": 3})
    df = E.frame_scores(_objects([("01", 2, 1.0)]), labels, _cfg(fill=0.25))
    np.testing.assert_allclose(df["score"], [0.25, 0.25, 1.0])


def test_unknown_video_in_objects_raises():
    with pytest.raises(VadError, match="09"):
        E.frame_scores(_objects([("09", 0, 1.0)]), _labels({"01": 2}), _cfg())


def test_exclude_first_marks_the_first_frames_of_every_video():
    labels = _labels({"01": 6, "02": 5})
    objects = _objects([("01", 5, 1.0), ("02", 4, 1.0)])
    df = E.frame_scores(objects, labels, _cfg(exclude_first=3))
    for _, g in df.groupby("video"):
        assert g["excluded"].tolist() == [t < 3 for t in g["frame"]]


def test_minmax_normalisation_per_video():
    labels = _labels({"01": 5, "02": 5})
    objects = _objects(
        [("01", t, s) for t, s in enumerate([100.0, 2.0, 4.0, 6.0, 3.0])]
        + [("02", t, s) for t, s in enumerate([-5.0, 10.0, 30.0, 20.0, 10.0])]
    )
    df = E.frame_scores(objects, labels, _cfg(exclude_first=1, per_video="minmax"))
    v1 = df[df["video"] == "01"]
    v2 = df[df["video"] == "02"]
    # statistics come from the kept frames only (frame 0 is excluded)
    np.testing.assert_allclose(v1["score"].to_numpy()[1:], [0.0, 0.5, 1.0, 0.25])
    np.testing.assert_allclose(v2["score"].to_numpy()[1:], [0.0, 1.0, 0.5, 0.0])


def test_minmax_constant_video_gives_zeros():
    labels = _labels({"01": 4})
    df = E.frame_scores(_objects([("01", t, 3.0) for t in range(4)]), labels, _cfg(per_video="minmax"))
    np.testing.assert_allclose(df["score"], 0.0)


def test_smoothing_changes_only_kept_frames():
    labels = _labels({"01": 12, "02": 12})
    rng = np.random.default_rng(0)
    objects = _objects([(v, t, float(rng.normal())) for v in ("01", "02") for t in range(12)])
    raw = E.frame_scores(objects, labels, _cfg(exclude_first=4))
    smooth = E.frame_scores(objects, labels, _cfg(exclude_first=4, smoothing=1.5))
    ex = raw["excluded"].to_numpy()
    np.testing.assert_array_equal(smooth["score"].to_numpy()[ex], raw["score"].to_numpy()[ex])
    kept_raw, kept_smooth = raw["score"].to_numpy()[~ex], smooth["score"].to_numpy()[~ex]
    assert not np.allclose(kept_raw, kept_smooth)
    assert kept_smooth.std() < kept_raw.std()  # smoothing reduces the variance
    # each video is smoothed on its own: video 02's scores do not leak into video 01
    only_01 = E.frame_scores(objects[objects["video"] == "01"], _labels({"01": 12}),
                             _cfg(exclude_first=4, smoothing=1.5))
    np.testing.assert_allclose(smooth[smooth["video"] == "01"]["score"], only_01["score"])


# --------------------------------------------------------------------------- metrics


def _frames(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["video", "frame", "score", "label", "excluded"])


def test_metrics_micro_macro_and_skipped_single_class_video():
    rows = [
        # video a: perfectly ranked
        ("a", 0, 0.1, 0, False), ("a", 1, 0.2, 0, False), ("a", 2, 0.9, 1, False), ("a", 3, 0.8, 1, False),
        # video b: inverted
        ("b", 0, 0.7, 0, False), ("b", 1, 0.3, 1, False),
        # video c: normal only -> no per-video AUC
        ("c", 0, 0.05, 0, False), ("c", 1, 0.5, 0, False),
        # excluded and unlabelled frames are ignored (their scores would spoil a perfect ranking)
        ("a", 4, 100.0, 0, True), ("c", 2, 100.0, -1, False),
    ]
    m = E.metrics(_frames(rows))
    assert set(m["auc_per_video"]) == {"a", "b"}
    assert m["auc_per_video"]["a"] == pytest.approx(1.0)
    assert m["auc_per_video"]["b"] == pytest.approx(0.0)
    assert m["auc_macro"] == pytest.approx(0.5)
    used = [r for r in rows if not r[4] and r[3] >= 0]
    y = np.array([r[3] for r in used])
    s = np.array([r[2] for r in used])
    assert m["auc_micro"] == pytest.approx(E.auc(y, s))
    assert m["ap"] == pytest.approx(E.average_precision(y, s))
    assert m["eer"] == pytest.approx(E.eer(y, s))
    assert m["n_frames"] == 8 and m["n_abnormal"] == 3


def test_metrics_macro_none_when_no_video_has_both_classes():
    rows = [("a", 0, 0.1, 0, False), ("a", 1, 0.2, 0, False), ("b", 0, 0.9, 1, False)]
    m = E.metrics(_frames(rows))
    assert m["auc_macro"] is None
    assert m["auc_micro"] == pytest.approx(1.0)


@pytest.mark.parametrize("label", [0, 1])
def test_metrics_single_class_raises(label):
    rows = [("a", t, float(t), label, False) for t in range(5)] + [("a", 5, 0.0, 1 - label, True)]
    with pytest.raises(VadError, match="one class"):
        E.metrics(_frames(rows))


def test_metrics_no_usable_frames_raises():
    with pytest.raises(VadError):
        E.metrics(_frames([("a", 0, 0.0, -1, False), ("a", 1, 0.0, 1, True)]))


def test_evaluate_writes_json(tmp_path):
    import json

    frames = _frames([("01", 0, 0.1, 0, False), ("01", 1, 0.9, 1, False), ("01", 2, 0.5, 0, True)])
    frames.to_csv(tmp_path / "frames.csv", index=False)
    out = tmp_path / "eval" / "result.json"
    res = E.evaluate(str(tmp_path / "frames.csv"), str(out), {"x": 1}, "demo")
    stored = json.loads(out.read_text())
    assert stored["auc_micro"] == pytest.approx(1.0) == res["auc_micro"]
    assert stored["dataset"] == "demo" and stored["protocol"] == {"x": 1}
    assert stored["auc_per_video"] == {"01": 1.0}  # '01' stays a string
    assert "numpy" in stored["versions"]


def test_each_score_term_is_pooled_and_evaluated_on_its_own():
    """A user reads from auc.json which term detects: S_f ranks these frames right, S_p backwards."""
    labels = _labels({"01": 5}, {"01": [3, 4]})
    rows = [  # video, frame, s_f, s_p, score (fused)
        ("01", 1, 0.1, 0.9, 0.0), ("01", 1, 0.2, 0.1, 0.5),   # per term, the frame takes each term's max
        ("01", 2, 0.3, 0.8, 0.1),
        ("01", 3, 0.7, 0.2, 0.2), ("01", 4, 0.9, 0.05, 0.9),
    ]
    objects = pd.DataFrame(rows, columns=["video", "frame", "s_f", "s_p", "score"])
    objects[["z_f", "z_p"]] = objects[["s_f", "s_p"]].to_numpy()   # the fusion's z-scores (here the terms)
    df = E.frame_scores(objects, labels, _cfg(fill="min"))
    assert list(df.columns) == ["video", "frame", "score", "label", "n_objects", "excluded",
                                "score_f", "score_p", "camera"]
    # frame 0 has no object: each column gets its own lowest value
    np.testing.assert_allclose(df["score_f"], [0.1, 0.2, 0.3, 0.7, 0.9])
    np.testing.assert_allclose(df["score_p"], [0.05, 0.9, 0.8, 0.2, 0.05])
    np.testing.assert_allclose(df["score"], [0.0, 0.5, 0.1, 0.2, 0.9])
    m = E.metrics(df)
    assert m["auc_terms"]["s_f"] == pytest.approx(1.0)
    # s_p: abnormal frames 3, 4 (0.2, 0.05) against normal 0.05, 0.9, 0.8 -> 1.5 of 6 pairs
    assert m["auc_terms"]["s_p"] == pytest.approx(1.5 / 6)
    assert m["auc_micro"] == pytest.approx(5 / 6)   # the fused score is evaluated as before


def test_a_term_the_model_lacks_gets_no_column_and_no_auc():
    labels = _labels({"01": 3}, {"01": [2]})
    objects = pd.DataFrame([("01", 1, np.nan, 0.1, 0.1), ("01", 2, np.nan, 0.4, 0.4)],
                           columns=["video", "frame", "s_f", "s_p", "score"])   # one stream: no S_f
    objects["z_f"], objects["z_p"] = 0.0, objects["s_p"]   # as the fusion writes them
    df = E.frame_scores(objects, labels, _cfg(fill=-1.0))
    assert "score_f" not in df.columns
    np.testing.assert_allclose(df["score"], [-1.0, 0.1, 0.4])     # the configured fill
    np.testing.assert_allclose(df["score_p"], [0.1, 0.1, 0.4])    # a term's own lowest value
    assert E.metrics(df)["auc_terms"] == {"s_p": pytest.approx(1.0)}


def test_terms_without_their_z_scores_are_an_error_naming_the_file(tmp_path):
    """An object_scores.csv whose terms have no z-scores (an older version's) is not pooled from
    the raw terms, which live on other scales than the fused score: an error naming the file."""
    labels = _labels({"01": 3}, {"01": [2]})
    labels.to_csv(tmp_path / "labels.csv", index=False)
    objects = pd.DataFrame([("01", 1, 0.2, 0.1, 0.1, 0.1), ("01", 2, 0.9, 0.4, 0.4, 0.4)],
                           columns=["video", "frame", "s_f", "s_p", "z_p", "score"])   # z_f missing
    objects.to_csv(tmp_path / "object_scores.csv", index=False)
    with pytest.raises(VadError, match=r"object_scores.csv: no column z_f .*rerun the score rule"):
        E.write_frame_scores(str(tmp_path / "object_scores.csv"), str(tmp_path / "labels.csv"),
                             str(tmp_path / "frames.csv"), _cfg())
    assert not (tmp_path / "frames.csv").exists()


# --------------------------------------------------------------------------- labels_table


def _video(name: str, n: int) -> Video:
    return Video(name=name, split="test", frames=tuple(Path(f"{t:03d}.jpg") for t in range(n)))


def test_labels_table_one_row_per_frame():
    videos = [_video("01", 3), _video("02", 2)]
    labels = {"01": np.array([False, True, True]), "02": np.array([True, False])}
    df = E.labels_table(videos, labels)
    assert df["video"].tolist() == ["01", "01", "01", "02", "02"]
    assert df["frame"].tolist() == [0, 1, 2, 0, 1]
    assert df["label"].tolist() == [0, 1, 1, 1, 0]


def test_labels_table_unlabelled_video_gets_minus_one():
    df = E.labels_table([_video("01", 2), _video("02", 2)], {"01": np.array([True, False])})
    assert df["label"].tolist() == [1, 0, -1, -1]


def test_labels_table_round_trip_through_frame_scores(tmp_path):
    videos = [_video("01", 4)]
    table = E.labels_table(videos, {"01": np.array([False, False, True, True])})
    table.to_csv(tmp_path / "labels.csv", index=False)
    _objects([("01", 2, 5.0), ("01", 3, 6.0)]).to_csv(tmp_path / "objects.csv", index=False)
    df = E.write_frame_scores(str(tmp_path / "objects.csv"), str(tmp_path / "labels.csv"),
                              str(tmp_path / "frames.csv"), _cfg(exclude_first=1))
    assert df["video"].tolist() == ["01"] * 4
    assert df["label"].tolist() == [0, 0, 1, 1]
    np.testing.assert_allclose(df["score"], [5.0, 5.0, 5.0, 6.0])
    back = pd.read_csv(tmp_path / "frames.csv", dtype={"video": str})
    assert back["video"].tolist() == ["01"] * 4


# --------------------------------------------------------------------------- no ground truth, top anomalies


def test_evaluate_without_ground_truth_explains_instead_of_failing(tmp_path):
    import json

    frames = _frames([("01", t, 0.1 * t, -1, t < 1) for t in range(5)])
    frames.to_csv(tmp_path / "frames.csv", index=False)
    res = E.evaluate(str(tmp_path / "frames.csv"), str(tmp_path / "auc.json"), {}, "cam")
    stored = json.loads((tmp_path / "auc.json").read_text())
    assert stored == res
    assert res["auc_micro"] is None and res["ap"] is None and res["n_frames"] == 4
    assert "no ground truth" in res["note"]


def _scored(video: str, scores: list[float], labels: list[int] | None = None) -> pd.DataFrame:
    n = len(scores)
    return pd.DataFrame({"video": video, "frame": np.arange(n), "score": scores,
                         "label": labels if labels is not None else [-1] * n, "excluded": False})


def test_top_anomalies_segments_ranked_with_time_stamps():
    frames = pd.concat([
        _scored("a", [0, 0, 9, 8, 0, 0, 0, 7, 0, 0]),
        _scored("b", [0, 0, 0, 0, 10, 0, 0, 0, 0, 0]),
    ])
    # 16 zeros and 7, 8, 9, 10: the 80th percentile (1.4) keeps every non-zero frame
    top = E.top_anomalies(frames, {"a": 2.0, "b": None}, {"top_k": 5, "quantile": 0.8, "merge_gap": 0})
    assert top["rank"].tolist() == [1, 2, 3]
    assert top[["video", "start_frame", "end_frame", "peak_frame"]].values.tolist() == [
        ["b", 4, 4, 4], ["a", 2, 3, 2], ["a", 7, 7, 7]]
    a = top.iloc[1]
    assert (a["start_s"], a["end_s"], a["start_time"], a["end_time"]) == (1.0, 2.0, "00:00:01.000", "00:00:02.000")
    assert pd.isna(top.iloc[0]["start_s"])  # no frame rate known for b
    # a gap of up to merge_gap frames joins two runs; top_k cuts the list
    top = E.top_anomalies(frames, {}, {"top_k": 1, "quantile": 0.8, "merge_gap": 3})
    assert len(top) == 1 and top.iloc[0]["video"] == "b"
    top = E.top_anomalies(frames[frames["video"] == "a"], {}, {"top_k": 5, "quantile": 0.7, "merge_gap": 3})
    assert top[["start_frame", "end_frame", "peak_frame"]].values.tolist() == [[2, 7, 2]]


def test_top_anomalies_label_overlap_when_labelled():
    frames = _scored("a", [0, 5, 5, 5, 5, 0], labels=[0, 0, 1, 1, 1, 1])
    top = E.top_anomalies(frames, {}, {"top_k": 3, "quantile": 0.5, "merge_gap": 0})
    assert top.iloc[0]["label_overlap"] == pytest.approx(0.75)  # frames 1-4, three of them abnormal


def test_html_summary_tables_and_embedded_figures(tmp_path):
    import cv2

    small = tmp_path / "roc.png"
    cv2.imwrite(str(small), np.zeros((40, 40, 3), np.uint8))
    big = tmp_path / "contact_sheet.png"   # noise: a large PNG, embedded as JPEG
    cv2.imwrite(str(big), np.random.default_rng(0).integers(0, 255, (300, 1600, 3), dtype=np.uint8))
    result = {"dataset": "d", "auc_micro": 0.9, "auc_macro": 0.8, "ap": 0.7, "eer": 0.1, "auc_terms": {"s_f": 0.6},
              "n_frames": 100, "n_abnormal": 30, "auc_per_video": {"01": 0.85},
              "localisation": {"rbdc": 0.5, "tbdc": 0.25, "pixel_auc": None, "n_frames": 2, "n_regions": 3,
                               "n_tracks": 2, "n_detections": 4,
                               "protocol": {"overlap": 0.1, "track_fraction": 0.1, "max_fpr": 1.0}}}
    bench = {"stages": {"detect": {"wall_s": 1.5, "frames_per_s": 10.0}}}
    out = tmp_path / "summary.html"
    E.html_summary(result, bench, str(out), [small, big])
    text = out.read_text()
    for s in ("0.9000", "<td>100</td>", "RBDC (overlap 0.1", "<td>-</td>", "data:image/png;base64,",
              "data:image/jpeg;base64,", "roc.png", "contact_sheet.png", "detect"):
        assert s in text, s
    assert len(text) < big.stat().st_size   # re-encoded, far below the 2 MB a data URL may hold
    no_gt = {**E.NO_GT, "dataset": "d", "note": "no ground truth for this dataset"}
    E.html_summary(no_gt, None, str(out))
    assert "no ground truth" in out.read_text() and "RBDC" not in out.read_text()


def test_papers_convention_drops_the_first_frames_and_takes_a_17_frame_median():
    """Each video: abnormal frames 40-59 at 2, normal frames at 0, the first 4 (no cube) at 9. A
    run of 8 high normal frames vanishes under a 17-frame median, a run of 9 stays: the papers'
    figure has 9 normal frames above the abnormal ones where the raw one has 17 (a 15-frame
    median keeps both runs, a 19-frame one neither; the first frames kept would add 8)."""
    from vad_pipeline import evaluate as E

    rows = []
    for video, run in (("a", range(10, 18)), ("b", range(10, 19))):
        for f in range(80):
            label = int(40 <= f < 60)
            score = 9.0 if f < 4 else 3.0 if f in run else 2.0 * label
            rows.append((video, f, score, label, f < 4, score))
    frames = pd.DataFrame(rows, columns=["video", "frame", "score", "label", "excluded", "score_m"])
    raw = E.metrics(frames)
    papers = raw["papers_convention"]
    normal, abnormal = 2 * (76 - 20), 2 * 20
    assert raw["auc_micro"] == pytest.approx(1 - 17 / normal)
    assert papers["auc_micro"] == pytest.approx(1 - 9 / normal) and papers["auc_terms"]["s_m"] == papers["auc_micro"]
    assert papers["n_frames"] == normal + abnormal and papers["auc_macro"] == pytest.approx((1 + 1 - 9 / 56) / 2)
    assert papers["protocol"] == {"exclude_first": 4, "median_frames": 17}
