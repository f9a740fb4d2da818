rule frame_scores:
    """Max over each frame's objects, plus score.w_c times the cell term; fill, exclusion,
    smoothing and normalisation from config."""
    input:
        objects="results/{dataset}/object_scores.csv",
        labels="results/{dataset}/labels.csv",
        cells_train="results/{dataset}/cells/train.csv",
        cells_test="results/{dataset}/cells/test.csv",
        cameras=["results/{dataset}/cameras/train.csv", "results/{dataset}/cameras/test.csv"],
        weights=fusion_weights_input,
    output:
        "results/{dataset}/frame_scores.csv",
    params:
        cfg=params_json("frame_scores", "cameras", only={"cameras": ("normalize",)},
                        extra=lambda c: {"score": {k: c["score"][k] for k in ("w_c", "weights")}}),
        weights=weights_arg,
    log:
        "results/logs/{dataset}/frame_scores.log",
    conda:
        f"{ENVS}/eval.yaml"
    shell:
        "{VAD} frame-scores --params {params.cfg:q} --objects {input.objects:q} --labels {input.labels:q} "
        "--cells-train {input.cells_train:q} --cells-test {input.cells_test:q} --cameras {input.cameras:q} "
        "{params.weights:q} --out {output:q} 2> {log:q}"


rule top_anomalies:
    """The highest-peaking segments of frame scores (labelled or not): what to look at first."""
    input:
        frames="results/{dataset}/frame_scores.csv",
        summary="results/{dataset}/gt_summary.json",
    output:
        report("results/{dataset}/top_anomalies.csv", caption="../report/top_anomalies.rst", category="Top anomalies"),
    params:
        cfg=params_json("report"),
    log:
        "results/logs/{dataset}/top_anomalies.log",
    conda:
        f"{ENVS}/eval.yaml"
    shell:
        "{VAD} top-anomalies --params {params.cfg:q} --frames {input.frames:q} --summary {input.summary:q} "
        "--out {output:q} 2> {log:q}"


rule pictures:
    """A strip of frames around each top segment's peak, boxes, scores and ground truth drawn;
    a contact sheet of all. Reads only the frames it shows."""
    input:
        unpack(dataset_input),
        top="results/{dataset}/top_anomalies.csv",
        objects="results/{dataset}/object_scores.csv",
        frames="results/{dataset}/frame_scores.csv",
        cells="results/{dataset}/cells/test.csv",
    output:
        report(directory("results/{dataset}/top_anomalies"), patterns=["{name}.png"],
               caption="../report/pictures.rst", category="Top anomalies"),
    params:
        root=root_param,
        cfg=params_json("report", "demo"),
        masks=masks_param,
    log:
        "results/logs/{dataset}/pictures.log",
    conda:
        f"{ENVS}/vision.yaml"
    shell:
        "{VAD} pictures --params {params.cfg:q} --root @{params.root:q} --top {input.top:q} --objects {input.objects:q} "
        "--frames {input.frames:q} --cells {input.cells:q} --out {output:q} 2> {log:q}"


rule localisation:
    """RBDC, TBDC (Ramachandra and Jones 2020) and pixel-level AUC from the object boxes; only for
    datasets with pixel masks (localisation_input)."""
    input:
        unpack(dataset_input),
        objects="results/{dataset}/object_scores.csv",
        frames="results/{dataset}/frame_scores.csv",
    output:
        json="results/{dataset}/localisation.json",
        plot=report("results/{dataset}/localisation.png", caption="../report/localisation.rst", category="Localisation"),
    params:
        root=root_param,
        cfg=params_json("localisation", "demo"),
        masks=masks_param,
    log:
        "results/logs/{dataset}/localisation.log",
    conda:
        f"{ENVS}/eval.yaml"
    shell:
        "{VAD} localise --params {params.cfg:q} --root @{params.root:q} --objects {input.objects:q} --frames {input.frames:q} "
        "--out {output.json:q} --plot {output.plot:q} 2> {log:q}"


# auc.json is written last: it pulls in the pictures, the localisation metrics and the benchmark,
# so `snakemake --report results/<d>/report.html results/<d>/auc.json` holds every figure of a run.
rule evaluate:
    """Frame-level AUC (micro, macro), AP, EER with the protocol, localisation metrics where pixel
    masks exist; ROC, score curves, the figures as a table."""
    input:
        frames="results/{dataset}/frame_scores.csv",
        summary="results/{dataset}/gt_summary.json",
        loc=localisation_input("localisation.json"),
        loc_plot=localisation_input("localisation.png"),
        bench="results/{dataset}/benchmark.json",
        pictures="results/{dataset}/top_anomalies",
        loss="results/{dataset}/train/loss.png",
        validation=validation_input,
    output:
        auc=report("results/{dataset}/auc.json", caption="../report/auc.rst", category="Frame level"),
        roc=report("results/{dataset}/roc.png", caption="../report/roc.rst", category="Frame level"),
        curves=report("results/{dataset}/scores.png", caption="../report/scores.rst", category="Frame level"),
        table=report("results/{dataset}/summary.html", caption="../report/summary.rst", category="Frame level"),
    params:
        cfg=params_json("score", "frame_scores", "model", "detect", "flow", "stc", "train", "preset"),
        extra=evaluate_extras,
    log:
        "results/logs/{dataset}/evaluate.log",
    conda:
        f"{ENVS}/eval.yaml"
    shell:
        "{VAD} evaluate --params {params.cfg:q} --frames {input.frames:q} --summary {input.summary:q} "
        "{params.extra:q} --out {output.auc:q} --roc {output.roc:q} --curves {output.curves:q} "
        "--table {output.table:q} 2> {log:q}"


rule benchmark:
    """Per-stage wall time, throughput, peak memory and bytes on disk, once every stage it measures
    (detect to score, the motion and cell terms) is done."""
    input:
        unpack(dataset_input),
        scores="results/{dataset}/object_scores.csv",
        cells="results/{dataset}/cells/test.csv",
    output:
        report("results/{dataset}/benchmark.json", caption="../report/benchmark.rst", category="Benchmark"),
    params:
        root=root_param,
        cfg=params_json("demo", "detect", "flow", "frame_scores", "train", "validation",
                        only=lambda c: {"train": ("max_cubes",), "validation": holdout_keys(c)}),
    log:
        "results/logs/{dataset}/benchmark.log",
    conda:
        f"{ENVS}/eval.yaml"
    shell:
        "{VAD} bench --params {params.cfg:q} --root @{params.root:q} --results results --out {output:q} > /dev/null 2> {log:q}"
