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
    """Read the frame-level ground truth, check it against the test videos, one row per frame."""
    input:
        dataset_input,
    output:
        "results/{dataset}/labels.csv",
    params:
        cfg=params_json("demo"),
    log:
        "results/logs/{dataset}/labels.log",
    conda:
        f"{ENVS}/vision.yaml"
    shell:
        "{VAD} labels --params {params.cfg:q} --out {output} 2> {log}"
