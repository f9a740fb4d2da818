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
    """Read the ground truth, check it against the test videos: one row per frame, plus a summary."""
    input:
        unpack(dataset_input),
    output:
        labels="results/{dataset}/labels.csv",
        summary="results/{dataset}/gt_summary.json",
    params:
        root=root_param,
        cfg=params_json("demo"),
        videos=videos_param("test"),
        gt=gt_param,
    log:
        "results/logs/{dataset}/labels.log",
    conda:
        f"{ENVS}/vision.yaml"
    shell:
        "{VAD} labels --params {params.cfg:q} --root @{params.root:q} --out {output.labels:q} "
        "--summary {output.summary:q} 2> {log:q}"
