rule flow:
    """Optical flow of one video, frame t-1 -> t (backend from flow.backend), float16 HDF5."""
    input:
        unpack(dataset_input),
        weights=weights_input("flow"),
    output:
        "results/{dataset}/flow/{split}/{video}.h5",
    params:
        root=root_param,
        cfg=params_json("flow", "demo"),
        video=videos_param(),
    log:
        "results/logs/{dataset}/flow/{split}/{video}.log",
    benchmark:
        "results/benchmarks/{dataset}/flow/{split}/{video}.tsv"
    resources:
        gpu=gpu_request("flow"),
    group:
        "per_video"  # cluster only: --group-components per_video=N bundles N such jobs per submission
    conda:
        f"{ENVS}/vision.yaml"
    shell:
        "{VAD} flow --params {params.cfg:q} --root @{params.root:q} --split {wildcards.split:q} "
        "--video {wildcards.video:q} --out {output:q} 2> {log:q}"
