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
        "{VAD} make-demo --params {params.cfg:q} --out {output} 2> {log}"


rule labels:
    """Read the ground truth, check it against the test videos: one row per frame, plus a summary."""
    input:
        dataset_input,
    output:
        labels="results/{dataset}/labels.csv",
        summary="results/{dataset}/gt_summary.json",
    params:
        cfg=params_json("demo"),
    log:
        "results/logs/{dataset}/labels.log",
    conda:
        f"{ENVS}/vision.yaml"
    shell:
        "{VAD} labels --params {params.cfg:q} --out {output.labels} --summary {output.summary} 2> {log}"
