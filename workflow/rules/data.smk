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
    """Read the ground truth, check it against the test videos: one row per frame, plus a summary;
    the camera of every video (cameras.csv)."""
    input:
        unpack(dataset_input),
    output:
        labels="results/{dataset}/labels.csv",
        summary="results/{dataset}/gt_summary.json",
        cameras="results/{dataset}/cameras.csv",
    params:
        root=root_param,
        cfg=params_json("demo", extra=lambda c: {"cameras": vcams.mode(c)}),
        videos=videos_param("test"),
        train_videos=videos_param("train"),
        gt=gt_param,
    log:
        "results/logs/{dataset}/labels.log",
    conda:
        f"{ENVS}/vision.yaml"
    shell:
        "{VAD} labels --params {params.cfg:q} --root @{params.root:q} --out {output.labels:q} "
        "--summary {output.summary:q} --cameras {output.cameras:q} 2> {log:q}"
