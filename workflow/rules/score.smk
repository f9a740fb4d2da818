rule infer:
    """Raw per-object terms of a split: feature inconsistency S_f and prediction error S_p."""
    input:
        model="results/{dataset}/train/model.pt",
        stc="results/{dataset}/stc/{split}.h5",
    output:
        "results/{dataset}/infer/{split}.csv",
    params:
        cfg=params_json("device", extra=lambda c: {"score": {"batch_size": c["score"]["batch_size"]}}),
        # the training split: at most score.train_cubes scored (its statistics are all score needs of it)
        cap=lambda w: (job_config(w)["score"].get("train_cubes") or 0) if w.split == "train" else 0,
    threads: 8  # a local default (capped by --cores); profiles set threads, memory, GPUs and time
    log:
        "results/logs/{dataset}/infer/{split}.log",
    benchmark:
        "results/benchmarks/{dataset}/infer/{split}.tsv"
    conda:
        f"{ENVS}/torch.yaml"
    shell:
        "OMP_NUM_THREADS={threads} {VAD} infer --params {params.cfg:q} --model {input.model:q} "
        "--stc {input.stc:q} --out {output:q} --threads {threads} --max-cubes {params.cap} 2> {log:q}"


rule motion_features:
    """Per detected object of a split: flow statistics in its box, its size and place (no model)."""
    input:
        boxes=per_video("results/{dataset}/detect/{split}/{video}.csv"),
        flows=per_video("results/{dataset}/flow/{split}/{video}.h5"),
    output:
        "results/{dataset}/motion/features_{split}.csv",
    params:
        cfg=params_json("motion"),
        videos=videos_param(),
    log:
        "results/logs/{dataset}/motion/features_{split}.log",
    benchmark:
        "results/benchmarks/{dataset}/motion/features_{split}.tsv"
    conda:
        f"{ENVS}/eval.yaml"
    shell:
        "{VAD} motion-features --params {params.cfg:q} --boxes {input.boxes:q} --flows {input.flows:q} "
        "--out {output:q} 2> {log:q}"


rule motion_terms:
    """Motion term S_m of one part (vad_pipeline.object_motion): with cameras.motion camera and several cameras
    the objects of one camera, else of all ('all'): distance to the k nearest training objects
    (training objects: against the other training videos)."""
    input:
        train="results/{dataset}/motion/features_train.csv",
        test="results/{dataset}/motion/features_test.csv",
        cameras=["results/{dataset}/cameras/train.csv", "results/{dataset}/cameras/test.csv"],
    output:
        train="results/{dataset}/motion/terms/{camera}/train.csv",
        test="results/{dataset}/motion/terms/{camera}/test.csv",
    params:
        cfg=params_json("motion", "cameras", only={"cameras": ("motion", "blocks", "margin", "few_videos")}),
    wildcard_constraints:
        camera="[^/]+",
    threads: 2  # the nearest-neighbour queries (capped by --cores)
    log:
        "results/logs/{dataset}/motion/terms/{camera}.log",
    benchmark:
        "results/benchmarks/{dataset}/motion/terms/{camera}.tsv"
    conda:
        f"{ENVS}/eval.yaml"
    shell:
        "{VAD} motion-terms --params {params.cfg:q} --train {input.train:q} --test {input.test:q} "
        "--cameras {input.cameras:q} --camera {wildcards.camera:q} --threads {threads} "
        "--train-out {output.train:q} --test-out {output.test:q} 2> {log:q}"


rule cell_layout:
    """The windows of the cell term: an object's size at each image row, fitted to the training boxes."""
    input:
        boxes=per_video("results/{dataset}/detect/{split}/{video}.csv", split="train"),
        flows=per_video("results/{dataset}/flow/{split}/{video}.h5", split="train"),
        cameras="results/{dataset}/cameras/train.csv",
    output:
        "results/{dataset}/cells/layout.json",
    params:
        cfg=params_json("cells", "cameras", only={"cells": W.LAYOUT_KEYS, "cameras": ("cells",)}),
        videos=videos_param("train"),
    log:
        "results/logs/{dataset}/cells/layout.log",
    benchmark:
        "results/benchmarks/{dataset}/cells/layout.tsv"
    conda:
        f"{ENVS}/eval.yaml"
    shell:
        "{VAD} cell-layout --params {params.cfg:q} --boxes {input.boxes:q} --flows {input.flows:q} "
        "--cameras {input.cameras:q} --out {output:q} 2> {log:q}"


rule cell_stats_video:
    """Per window flow statistics of every frame of one video (no model); rule cell_stats gathers a split's."""
    input:
        flows="results/{dataset}/flow/{split}/{video}.h5",
        layout="results/{dataset}/cells/layout.json",
        cameras="results/{dataset}/cameras/{split}.csv",
    output:
        "results/{dataset}/cells/stats/{split}/{video}.h5",
    params:
        cfg=params_json("cells", only={"cells": W.STATS_KEYS}),
        video=videos_param(),
    log:
        "results/logs/{dataset}/cells/stats/{split}/{video}.log",
    benchmark:
        "results/benchmarks/{dataset}/cells/stats/{split}/{video}.tsv"
    group:
        "per_video_stc"  # cluster only: bundled like stc_video (after flow, beside it)
    conda:
        f"{ENVS}/eval.yaml"
    shell:
        "{VAD} cell-stats --params {params.cfg:q} --flows {input.flows:q} --layout {input.layout:q} "
        "--cameras {input.cameras:q} --out {output:q} 2> {log:q}"


rule cell_stats:
    """A split's window statistics as one HDF5 file: virtual datasets over its videos' (none copied)."""
    input:
        parts=per_video("results/{dataset}/cells/stats/{split}/{video}.h5"),
    output:
        "results/{dataset}/cells/stats_{split}.h5",
    log:
        "results/logs/{dataset}/cells/stats_{split}.log",
    benchmark:
        "results/benchmarks/{dataset}/cells/stats_{split}.tsv"
    conda:
        f"{ENVS}/eval.yaml"
    shell:
        "{VAD} cell-stats-gather --parts {input.parts:q} --out {output:q} 2> {log:q}"


rule cell_terms:
    """Cell motion term S_c of one part (vad_pipeline.windows): the frames of one window layout (with
    cameras.cells camera and several cameras one camera's, else all: 'all'), their windows of one band of
    rows (cells.jobs), each against the windows of its row in the training frames (training frames:
    against the other training videos)."""
    input:
        train="results/{dataset}/cells/stats_train.h5",
        test="results/{dataset}/cells/stats_test.h5",
        cameras=["results/{dataset}/cameras/train.csv", "results/{dataset}/cameras/test.csv"],
    output:
        train="results/{dataset}/cells/terms/{camera}/{band}/train.csv",
        test="results/{dataset}/cells/terms/{camera}/{band}/test.csv",
    params:
        cfg=params_json("cells", "cameras", only={"cells": W.TERMS_KEYS, "cameras": ("blocks", "margin", "few_videos")}),
    wildcard_constraints:
        camera="[^/]+",
        band="[0-9]+of[0-9]+",
    threads: 4  # the nearest-neighbour queries (capped by --cores)
    log:
        "results/logs/{dataset}/cells/terms/{camera}/{band}.log",
    benchmark:
        "results/benchmarks/{dataset}/cells/terms/{camera}/{band}.tsv"
    conda:
        f"{ENVS}/eval.yaml"
    shell:
        "{VAD} cell-terms --params {params.cfg:q} --train {input.train:q} --test {input.test:q} "
        "--cameras {input.cameras:q} --camera {wildcards.camera:q} --band {wildcards.band:q} --threads {threads} "
        "--train-out {output.train:q} --test-out {output.test:q} 2> {log:q}"


# The gathers of the weight-free terms, one shape: a term's part jobs (term_parts, common.smk) joined
# into the files one job would write (vad_pipeline.term_jobs); S_c keeps each frame's highest window
# over the bands and cameras.
for _term, _rule, _part in (
    ("motion", "gather_motion_terms", "{camera}"),
    ("cells", "gather_cell_terms", "{camera}/{band}"),
):

    rule:
        """A weight-free term of every object (S_m) or frame (S_c) from its part jobs: the file one job would write."""
        name:
            _rule
        input:
            train=term_parts(_term, f"results/{{dataset}}/{_term}/terms/{_part}/train.csv"),
            test=term_parts(_term, f"results/{{dataset}}/{_term}/terms/{_part}/test.csv"),
        output:
            train=f"results/{{dataset}}/{_term}/train.csv",
            test=f"results/{{dataset}}/{_term}/test.csv",
        params:
            term=_term,
        log:
            f"results/logs/{{dataset}}/{_term}/gather.log",
        conda:
            f"{ENVS}/eval.yaml"
        shell:
            "{VAD} gather-terms --term {params.term} --train {input.train:q} --test {input.test:q} "
            "--train-out {output.train:q} --test-out {output.test:q} 2> {log:q}"


rule score:
    """Per-object scores: terms z-scored with training statistics, fused with score.w_f / w_p / w_m."""
    input:
        train="results/{dataset}/infer/train.csv",
        test="results/{dataset}/infer/test.csv",
        motion_train="results/{dataset}/motion/train.csv",
        motion_test="results/{dataset}/motion/test.csv",
        cameras=["results/{dataset}/cameras/train.csv", "results/{dataset}/cameras/test.csv"],
        weights=fusion_weights_input,
    output:
        scores="results/{dataset}/object_scores.csv",
        stats="results/{dataset}/score_stats.json",
    params:
        cfg=params_json("score", "cameras", only={"cameras": ("normalize",)}),
        weights=weights_arg,
    log:
        "results/logs/{dataset}/score.log",
    benchmark:
        "results/benchmarks/{dataset}/score/score.tsv"
    conda:
        f"{ENVS}/eval.yaml"
    shell:
        "{VAD} score --params {params.cfg:q} --train {input.train:q} --test {input.test:q} "
        "--motion-train {input.motion_train:q} --motion-test {input.motion_test:q} --cameras {input.cameras:q} "
        "{params.weights:q} --out {output.scores:q} --stats {output.stats:q} 2> {log:q}"
