rule make_demo:
    """Generate the synthetic demo dataset (frames, frame and pixel ground truth)."""
    output:
        directory("resources/{dataset}"),
    params:
        cfg=params_json("demo"),
    log:
        "results/logs/{dataset}/make_demo.log",
    conda:
        f"{ENVS}/vision.yaml"
    shell:
        "{VAD} make-demo --params {params.cfg:q} --out {output:q} 2> {log:q}"


rule labels:
    """Read the ground truth, check it against the test videos: one row per frame, plus a summary
    (with each camera's videos and frames)."""
    input:
        unpack(dataset_input),
        cameras=["results/{dataset}/cameras/train.csv", "results/{dataset}/cameras/test.csv"],
    output:
        labels="results/{dataset}/labels.csv",
        summary="results/{dataset}/gt_summary.json",
    params:
        root=root_param,
        cfg=params_json("demo", "cameras", only={"cameras": ("min_train_frames", "few_videos")}),
        videos=videos_param("test"),
        gt=gt_param,
        masks=masks_param,
    log:
        "results/logs/{dataset}/labels.log",
    conda:
        f"{ENVS}/vision.yaml"
    shell:
        "{VAD} labels --params {params.cfg:q} --root @{params.root:q} --out {output.labels:q} "
        "--summary {output.summary:q} --cameras {input.cameras:q} 2> {log:q}"


rule cameras:
    """The camera of every video of a split (cameras.assign), one file per split: a test video
    added leaves the training split's file, and what was fitted to it, as it was."""
    input:
        unpack(dataset_input),
    output:
        "results/{dataset}/cameras/{split}.csv",
    params:
        root=root_param,
        cfg=params_json("demo", "validation", only=lambda c: {"validation": holdout_keys(c)},
                        extra=lambda c: {"cameras": {"assign": K.mode(c)}}),
        videos=videos_param(cameras=True),
    log:
        "results/logs/{dataset}/cameras_{split}.log",
    conda:
        f"{ENVS}/vision.yaml"
    shell:
        "{VAD} cameras --params {params.cfg:q} --root @{params.root:q} --split {wildcards.split:q} "
        "--out {output:q} 2> {log:q}"
