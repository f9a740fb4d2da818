# Label-free validation (vad_pipeline.validation, docs/validation.md): the held-out training videos
# (validation.videos per camera; no training video for anything else) made pseudo-anomalous, scored
# by every term, and the fusion weights chosen on them (score.weights: auto). No test frame is read.


rule validation_video:
    """One held-out training video made pseudo-anomalous (a segment of each validation.kinds) and
    its raw terms: detection, flow, cubes, the model's S_f and S_p, S_m's features, S_c's statistics."""
    input:
        unpack(dataset_input),
        model="results/{dataset}/train/model.pt",
        layout="results/{dataset}/cells/layout.json",
        boxes=per_video("results/{dataset}/detect/{split}/{video}.csv", split="train"),
    output:
        # the folder's pieces (vad_pipeline.validation.PIECES)
        infer="results/{dataset}/validation/videos/{video}/infer.csv",
        features="results/{dataset}/validation/videos/{video}/features.csv",
        cells="results/{dataset}/validation/videos/{video}/cells.h5",
        frames="results/{dataset}/validation/videos/{video}/frames.csv",
    params:
        root=root_param,
        # not the choice's settings (grid, tolerance): a new rule of choice reruns the choice only
        cfg=params_json("demo", "detect", "flow", "stc", "motion", "cells", "validation", "cameras", "device", "seed",
                        only=lambda c: {"validation": (*holdout_keys(c), "kinds", "segment", "max_frames")},
                        extra=lambda c: {"score": {"batch_size": c["score"]["batch_size"]}}),
        video=videos_param("holdout"),
        box_videos=lambda w: video_names(w.dataset, "train"),
        folder=lambda w, output: str(Path(output.infer).parent),
    threads: 2
    log:
        "results/logs/{dataset}/validation/{video}.log",
    benchmark:
        "results/benchmarks/{dataset}/validation/{video}.tsv"
    conda:
        f"{ENVS}/torch.yaml"
    shell:
        "OMP_NUM_THREADS={threads} {VAD} validation-video --params {params.cfg:q} --root @{params.root:q} "
        "--video {wildcards.video:q} --model {input.model:q} --layout {input.layout:q} --boxes {input.boxes:q} "
        "--box-videos {params.box_videos:q} --out {params.folder:q} --threads {threads} 2> {log:q}"


rule validation:
    """The validation table (AUC per camera, term and kind; the normal level's spread across videos)
    and the weights chosen from it by the rule fixed in advance (weights.json)."""
    input:
        parts=lambda w: expand("results/{dataset}/validation/videos/{video}/{piece}", dataset=w.dataset,
                               video=held_out(w.dataset), piece=["infer.csv", "features.csv", "cells.h5", "frames.csv"]),
        infer="results/{dataset}/infer/train.csv",
        motion="results/{dataset}/motion/train.csv",
        features="results/{dataset}/motion/features_train.csv",
        cell_stats="results/{dataset}/cells/stats_train.h5",
        cells="results/{dataset}/cells/train.csv",
        cameras="results/{dataset}/cameras/train.csv",
    output:
        table=report("results/{dataset}/validation/table.csv", caption="../report/validation.rst",
                     category="Validation"),
        weights="results/{dataset}/validation/weights.json",
        frames="results/{dataset}/validation/frames.csv",
    params:
        # not block, min_block: the held-out parts it reads are its input, named by their frames
        cfg=params_json("motion", "cells", "score", "validation", "frame_scores", "cameras", "seed",
                        only={"validation": ("videos", "min_videos", "kinds", "segment", "max_frames", "grid",
                                             "tolerance")}),
        folders=lambda w: [f"results/{w.dataset}/validation/videos/{v}" for v in held_out(w.dataset)],
    threads: 2
    log:
        "results/logs/{dataset}/validation/validation.log",
    benchmark:
        "results/benchmarks/{dataset}/validation/validation.tsv"
    conda:
        f"{ENVS}/eval.yaml"
    shell:
        "{VAD} validation --params {params.cfg:q} --parts {params.folders:q} --infer {input.infer:q} "
        "--motion {input.motion:q} --features {input.features:q} --cell-stats {input.cell_stats:q} "
        "--cells {input.cells:q} --cameras {input.cameras:q} --table {output.table:q} --out {output.weights:q} "
        "--frames {output.frames:q} "
        "2> {log:q}"
