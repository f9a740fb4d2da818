# A trained dataset applied to batches of new footage (vad_pipeline.apply, docs/apply.md):
#   snakemake --cores 8 results/<dataset>/apply/<batch>/auc.json     (datasets.<dataset>.apply.<batch>.root)
#   snakemake --cores 8 results/<dataset>/bundle.tar.gz              (the trained dataset, to take elsewhere)
# Each video of a batch is one job against the dataset's bundle (results/<dataset>/bundle: the model,
# training statistics, references, layouts, settings); the batch's gathers are small. A video added
# runs its own job and the gathers; nothing of training, and no other video, runs again. Cameras
# and frame sizes are checked while the jobs are planned, before any of them runs.
from vad_pipeline import apply as AP  # noqa: E402
from vad_pipeline import bundle as B  # noqa: E402


def _apply_error(dataset, batch, exc):
    return WorkflowError(f"dataset {dataset}" + (f", batch {batch}" if batch else "") + f": {exc}")


@functools.cache
def external_bundle(dataset):
    """(path, manifest) of the bundle a dataset is applied with from elsewhere (datasets.<d>.bundle),
    checked (found, this version's format, every file there); None: the dataset's own training."""
    path = RESOLVED[dataset]["dataset"].get("bundle")
    if not path:
        return None
    try:
        return path, B.manifest(path)
    except VadError as exc:
        raise _apply_error(dataset, None, exc)


def _own_or_external(own):
    """A wildcard constraint: the datasets with (own=False) or without (own=True) a bundle from elsewhere."""
    names = [d for d in RESOLVED if bool(RESOLVED[d]["dataset"].get("bundle")) != own]
    return "|".join(names) if names else "(?!)"


@functools.cache
def batch_spec(dataset, batch):
    batches = RESOLVED[dataset]["dataset"].get("apply") or {}
    if batch not in batches:
        raise WorkflowError(f"dataset {dataset}: no batch {batch!r} under datasets.{dataset}.apply "
                            f"(have {', '.join(batches) or 'none'})")
    return batches[batch]


@functools.cache
def trained(dataset):
    """(what apply.assign and apply.check_size read of the bundle, {training video: camera}) before
    any job runs: the external bundle's manifest, or the dataset's own cameras (frame sizes once
    its window layout exists)."""
    ext = external_bundle(dataset)
    try:
        if ext:
            return ext[1], B.train_cameras(ext[0])
        cfg = RESOLVED[dataset]
        train_cams = K.video_cameras(cfg, "train")
        layout = Path(f"results/{dataset}/cells/layout.json")
        per = W.read_layout(str(layout))["cameras"] if layout.is_file() else {}
        cams = {c: {"frame_size": (per.get(c) or per.get(K.ONE) or {}).get("frame_size")}
                for c in sorted(set(train_cams.values()))}
        return {"dataset": dataset, "camera_assign": K.mode(cfg), "cameras": cams}, train_cams
    except VadError as exc:
        raise _apply_error(dataset, None, exc)


def batch_config(dataset, batch):
    """The batch's settings as far as reading its videos goes (the bundle's are the job's)."""
    ext = external_bundle(dataset)
    base = B.settings(ext[0]) if ext else RESOLVED[dataset]
    return AP.batch_config(B.settings_of(base) if not ext else base, dataset, batch, batch_spec(dataset, batch))


@functools.cache
def batch_plan(dataset, batch):
    """{video: camera} of a batch, in the batch's order: every video assigned one of the trained
    cameras and, where the camera's frame size is known, of that size; else an error naming the
    video, before any job runs."""
    spec = batch_spec(dataset, batch)
    info, train_cams = trained(dataset)
    try:
        names = list(AP.sources(spec["root"]))
        cams = AP.assign(info, names, spec["root"], train_cams)
        cfg = batch_config(dataset, batch)
        for name, cam in cams.items():
            if info["cameras"][cam].get("frame_size"):
                AP.check_size(info, D.get_video(cfg, "test", name), cam, int(cfg["dataset"]["work_height"]))
    except VadError as exc:
        raise _apply_error(dataset, batch, exc)
    return cams


@functools.cache
def batch_root_file(dataset, batch):
    """results/<d>/apply/<batch>/root.txt, (re)written when the batch's root differs from it: where
    a batch lives is not what its results depend on (as root_file; its videos' fingerprints are)."""
    path = Path(f"results/{dataset}/apply/{batch}/root.txt")
    text = f"{batch_spec(dataset, batch)['root']}\n"
    if not path.is_file() or path.read_text() != text:
        with atomic_path(path) as tmp:
            tmp.write_text(text)
    return str(path)


@functools.cache
def _batch_fingerprint(dataset, batch, video):
    spec = batch_spec(dataset, batch)
    try:
        src = AP.sources(spec["root"])[video]
        how = RESOLVED[dataset]["dataset"].get("fingerprint", "content")
        return D.fingerprint(src, how, HASHES.format(dataset=dataset))
    except (VadError, KeyError) as exc:
        raise _apply_error(dataset, batch, exc)


def batch_labels_param(wildcards):
    """The content of the batch's labels.csv (none: unlabelled)."""
    path = Path(batch_spec(wildcards.dataset, wildcards.batch)["root"]) / AP.LABELS_CSV
    return B.sha256(path) if path.is_file() else ""


def batch_spec_json(wildcards):
    spec = batch_spec(wildcards.dataset, wildcards.batch)
    return json.dumps({k: v for k, v in spec.items() if k != "root"}, sort_keys=True)


def bundle_dir(wildcards):
    return f"results/{wildcards.dataset}/bundle"


def batch_parts(wildcards):
    return expand("results/{dataset}/apply/{batch}/videos/{video}/{piece}", dataset=wildcards.dataset,
                  batch=wildcards.batch, video=list(batch_plan(wildcards.dataset, wildcards.batch)), piece=AP.PIECES)


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
    threads: 2
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
    wildcard_constraints:
        batch="[^/]+",
    log:
        "results/logs/{dataset}/apply/{batch}/pictures.log",
    conda:
        f"{ENVS}/vision.yaml"
    shell:
        "{VAD} pictures --params @{input.settings:q} --top {input.top:q} --objects {input.objects:q} "
        "--frames {input.frames:q} --cells {input.cells:q} --out {output:q} 2> {log:q}"


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
