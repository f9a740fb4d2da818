rule frame_scores:
    """Max over each frame's objects; fill, exclusion, smoothing and normalisation from config."""
    input:
        objects="results/{dataset}/object_scores.csv",
        labels="results/{dataset}/labels.csv",
    output:
        "results/{dataset}/frame_scores.csv",
    params:
        cfg=params_json("frame_scores"),
    log:
        "results/logs/{dataset}/frame_scores.log",
    conda:
        f"{ENVS}/eval.yaml"
    shell:
        "{VAD} frame-scores --params {params.cfg:q} --objects {input.objects:q} --labels {input.labels:q} "
        "--out {output:q} 2> {log:q}"


rule evaluate:
    """Frame-level AUC (micro, macro), AP, EER with the protocol; ROC, score curves, top anomalies."""
    input:
        frames="results/{dataset}/frame_scores.csv",
        summary="results/{dataset}/gt_summary.json",
    output:
        auc="results/{dataset}/auc.json",
        roc="results/{dataset}/roc.png",
        curves="results/{dataset}/scores.png",
        top="results/{dataset}/top_anomalies.csv",
    params:
        cfg=params_json("score", "frame_scores", "model", "detect", "flow", "stc", "train", "preset", "report"),
    log:
        "results/logs/{dataset}/evaluate.log",
    conda:
        f"{ENVS}/eval.yaml"
    shell:
        "{VAD} evaluate --params {params.cfg:q} --frames {input.frames:q} --summary {input.summary:q} "
        "--out {output.auc:q} --roc {output.roc:q} --curves {output.curves:q} --top {output.top:q} 2> {log:q}"


rule benchmark:
    """Per-stage wall time, throughput, peak memory and bytes on disk of a finished run."""
    input:
        unpack(dataset_input),
        auc="results/{dataset}/auc.json",
    output:
        "results/{dataset}/benchmark.json",
    params:
        cfg=params_json("demo", "detect", "flow", "frame_scores"),
    log:
        "results/logs/{dataset}/benchmark.log",
    conda:
        f"{ENVS}/eval.yaml"
    shell:
        "{VAD} bench --params {params.cfg:q} --root @{input.root:q} --results results --out {output:q} > /dev/null 2> {log:q}"
