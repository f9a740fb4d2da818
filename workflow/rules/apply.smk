# A trained dataset applied to batches of new footage (vad_pipeline.apply, docs/apply.md):
#   snakemake --cores 8 results/<dataset>/apply/<batch>/auc.json     (datasets.<dataset>.apply.<batch>.root)
#   snakemake --cores 8 results/<dataset>/bundle.tar.gz              (the trained dataset, to take elsewhere)
# Each video of a batch is one job against the dataset's bundle (results/<dataset>/bundle: the model,
# training statistics, references, layouts, settings); the batch's gathers are small. A video added
# runs its own job and the gathers; nothing of training, and no other video, runs again. Cameras
# and frame sizes are checked while the jobs are planned, before any of them runs.


rule bundle:
    """What scoring new footage needs of a trained dataset, in one folder (vad_pipeline.bundle)."""
    input:
        unpack(dataset_input),
        model="results/{dataset}/train/model.pt",
        infer="results/{dataset}/infer/train.csv",
        motion="results/{dataset}/motion/train.csv",
        features="results/{dataset}/motion/features_train.csv",
        cells="results/{dataset}/cells/train.csv",
        cell_stats="results/{dataset}/cells/stats_train.h5",
        layout="results/{dataset}/cells/layout.json",
        cameras="results/{dataset}/cameras/train.csv",
        weights=fusion_weights_input,
    output:
        directory("results/{dataset}/bundle"),
    params:
        root=root_param,
        # every setting a score depends on (report and localisation: the applying config's)
        cfg=params_json(*[s for s in C.SECTIONS if s not in B.UNTRACKED], "seed", "device", "preset"),
        weights=weights_arg,
    wildcard_constraints:
        dataset=_own_or_external(own=True),
    log:
        "results/logs/{dataset}/bundle.log",
    conda:
        f"{ENVS}/eval.yaml"
    shell:
        "{VAD} bundle --params {params.cfg:q} --root @{params.root:q} --model {input.model:q} --infer {input.infer:q} "
        "--motion {input.motion:q} --features {input.features:q} --cells {input.cells:q} "
        "--cell-stats {input.cell_stats:q} --layout {input.layout:q} --cameras {input.cameras:q} {params.weights:q} "
        "--out {output:q} 2> {log:q}"


rule bundle_import:
    """A bundle written elsewhere (datasets.<d>.bundle: a folder or archive), checked and copied in."""
    input:
        lambda w: external_bundle(w.dataset)[0],
    output:
        directory("results/{dataset}/bundle"),
    wildcard_constraints:
        dataset=_own_or_external(own=False),
    log:
        "results/logs/{dataset}/bundle.log",
    conda:
        f"{ENVS}/eval.yaml"
    shell:
        "{VAD} bundle-import --source {input:q} --out {output:q} 2> {log:q}"


rule bundle_archive:
    """The bundle as one .tar.gz, to copy to another machine (datasets.<d>.bundle there)."""
    input:
        "results/{dataset}/bundle",
    output:
        "results/{dataset}/bundle.tar.gz",
    log:
        "results/logs/{dataset}/bundle_archive.log",
    conda:
        f"{ENVS}/eval.yaml"
    shell:
        "{VAD} bundle-pack --bundle {input:q} --out {output:q} 2> {log:q}"


rule apply_video:
    """One video of a batch: detection, flow, cubes, the model's S_f and S_p, the test side of S_m
    and S_c against the bundle's references (vad_pipeline.apply.video_terms)."""
    input:
        bundle=bundle_dir,
    output:
        # the folder's pieces (vad_pipeline.apply.PIECES)
        infer="results/{dataset}/apply/{batch}/videos/{video}/infer.csv",
        motion="results/{dataset}/apply/{batch}/videos/{video}/motion.csv",
        cells="results/{dataset}/apply/{batch}/videos/{video}/cells.csv",
    params:
        root=lambda w: batch_root_file(w.dataset, w.batch),
        spec=batch_spec_json,
        device=lambda w: RESOLVED[w.dataset]["device"],
        video=lambda w: _batch_fingerprint(w.dataset, w.batch, w.video),
        camera=lambda w: batch_plan(w.dataset, w.batch)[w.video],
        folder=lambda w, output: str(Path(output.infer).parent),
    wildcard_constraints:
        batch="[^/]+",
    # one core: a video's stages are mostly single-threaded (decoding, detection, flow), so footage in
    # many files fills the cores with one video each (benchmarks/bench_apply.py, docs/apply.md)
    threads: 1
    log:
        "results/logs/{dataset}/apply/{batch}/{video}.log",
    benchmark:
        "results/benchmarks/{dataset}/apply/{batch}/{video}.tsv"
    group:
        "per_video"  # cluster only: --group-components per_video=N bundles N such jobs per submission
    conda:
        f"{ENVS}/torch.yaml"
    shell:
        "OMP_NUM_THREADS={threads} {VAD} apply-video --bundle {input.bundle:q} --batch-root @{params.root:q} "
        "--spec {params.spec:q} --device {params.device:q} --video {wildcards.video:q} --camera {params.camera:q} "
        "--out {params.folder:q} --threads {threads} 2> {log:q}"


rule apply_scores:
    """A batch's objects z-scored and fused with the bundle's training statistics and weights, pooled
    into frame scores; its frames' labels where it has labels.csv."""
    input:
        bundle=bundle_dir,
        parts=batch_parts,
    output:
        objects="results/{dataset}/apply/{batch}/object_scores.csv",
        stats="results/{dataset}/apply/{batch}/score_stats.json",
        frames="results/{dataset}/apply/{batch}/frame_scores.csv",
        labels="results/{dataset}/apply/{batch}/labels.csv",
        summary="results/{dataset}/apply/{batch}/gt_summary.json",
        cells="results/{dataset}/apply/{batch}/cells.csv",
        settings="results/{dataset}/apply/{batch}/settings.json",
    params:
        root=lambda w: batch_root_file(w.dataset, w.batch),
        spec=batch_spec_json,
        device=lambda w: RESOLVED[w.dataset]["device"],
        report=lambda w: json.dumps(RESOLVED[w.dataset]["report"], sort_keys=True),
        cameras=lambda w: json.dumps(batch_plan(w.dataset, w.batch)),
        videos=lambda w: json.dumps({v: _batch_fingerprint(w.dataset, w.batch, v) for v in batch_plan(w.dataset, w.batch)}),
        labels=batch_labels_param,
        folders=lambda w: [f"results/{w.dataset}/apply/{w.batch}/videos/{v}" for v in batch_plan(w.dataset, w.batch)],
    wildcard_constraints:
        batch="[^/]+",
    log:
        "results/logs/{dataset}/apply/{batch}/scores.log",
    benchmark:
        "results/benchmarks/{dataset}/apply/{batch}/scores.tsv"
    conda:
        f"{ENVS}/eval.yaml"
    shell:
        "{VAD} apply-scores --bundle {input.bundle:q} --batch-root @{params.root:q} --spec {params.spec:q} "
        "--name {wildcards.dataset:q}/{wildcards.batch:q} --device {params.device:q} --report {params.report:q} "
        "--parts {params.folders:q} --cameras {params.cameras:q} --labels {output.labels:q} "
        "--summary {output.summary:q} --cells {output.cells:q} --objects {output.objects:q} --frames {output.frames:q} "
        "--settings {output.settings:q} --stats {output.stats:q} 2> {log:q}"


rule apply_top_anomalies:
    """The batch's highest-peaking segments (top_anomalies.csv)."""
    input:
        frames="results/{dataset}/apply/{batch}/frame_scores.csv",
        summary="results/{dataset}/apply/{batch}/gt_summary.json",
        settings="results/{dataset}/apply/{batch}/settings.json",
    output:
        "results/{dataset}/apply/{batch}/top_anomalies.csv",
    wildcard_constraints:
        batch="[^/]+",
    log:
        "results/logs/{dataset}/apply/{batch}/top_anomalies.log",
    conda:
        f"{ENVS}/eval.yaml"
    shell:
        "{VAD} top-anomalies --params @{input.settings:q} --frames {input.frames:q} --summary {input.summary:q} "
        "--out {output:q} 2> {log:q}"


rule apply_pictures:
    """A strip of frames around each of the batch's top segments, and a contact sheet."""
    input:
        top="results/{dataset}/apply/{batch}/top_anomalies.csv",
        objects="results/{dataset}/apply/{batch}/object_scores.csv",
        frames="results/{dataset}/apply/{batch}/frame_scores.csv",
        cells="results/{dataset}/apply/{batch}/cells.csv",
        settings="results/{dataset}/apply/{batch}/settings.json",
    output:
        directory("results/{dataset}/apply/{batch}/top_anomalies"),
    params:
        root=lambda w: batch_root_file(w.dataset, w.batch),   # where the batch is now (it may have moved)
    wildcard_constraints:
        batch="[^/]+",
    log:
        "results/logs/{dataset}/apply/{batch}/pictures.log",
    conda:
        f"{ENVS}/vision.yaml"
    shell:
        "{VAD} pictures --params @{input.settings:q} --root @{params.root:q} --top {input.top:q} "
        "--objects {input.objects:q} --frames {input.frames:q} --cells {input.cells:q} --out {output:q} 2> {log:q}"


rule apply_evaluate:
    """The batch's summary page, score curves and, where it has labels, its AUC (auc.json)."""
    input:
        frames="results/{dataset}/apply/{batch}/frame_scores.csv",
        summary="results/{dataset}/apply/{batch}/gt_summary.json",
        pictures="results/{dataset}/apply/{batch}/top_anomalies",
        settings="results/{dataset}/apply/{batch}/settings.json",
    output:
        auc="results/{dataset}/apply/{batch}/auc.json",
        roc="results/{dataset}/apply/{batch}/roc.png",
        curves="results/{dataset}/apply/{batch}/scores.png",
        table="results/{dataset}/apply/{batch}/summary.html",
    wildcard_constraints:
        batch="[^/]+",
    log:
        "results/logs/{dataset}/apply/{batch}/evaluate.log",
    conda:
        f"{ENVS}/eval.yaml"
    shell:
        "{VAD} evaluate --params @{input.settings:q} --frames {input.frames:q} --summary {input.summary:q} "
        "--out {output.auc:q} --roc {output.roc:q} --curves {output.curves:q} --table {output.table:q} "
        "--figures {input.pictures:q} 2> {log:q}"
