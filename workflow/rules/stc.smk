rule stc_video:
    """Spatio-temporal cubes of every detected object of one video (HDF5); rule stc gathers a split's."""
    input:
        unpack(dataset_input),
        boxes="results/{dataset}/detect/{split}/{video}.csv",
        flows="results/{dataset}/flow/{split}/{video}.h5",
    output:
        "results/{dataset}/stc/{split}/{video}.h5",
    params:
        root=root_param,
        cfg=params_json("stc", "demo"),
        video=videos_param(),
    log:
        "results/logs/{dataset}/stc/{split}/{video}.log",
    benchmark:
        "results/benchmarks/{dataset}/stc/{split}/{video}.tsv"
    group:
        # cluster only, like detect's and flow's per_video but a group of its own: in one group with them
        # a video's detect -> stc_video <- flow would be one component with two parallel branches, which
        # the Slurm plugin's job step sizes differently from the submission (More processors requested)
        "per_video_stc"
    conda:
        f"{ENVS}/vision.yaml"
    shell:
        "{VAD} stc --part --params {params.cfg:q} --root @{params.root:q} --split {wildcards.split:q} "
        "--boxes {input.boxes:q} --flows {input.flows:q} --out {output:q} 2> {log:q}"


rule stc:
    """A split's cubes as one HDF5 file: virtual datasets over its videos' files (no cube copied), its own index."""
    input:
        parts=per_video("results/{dataset}/stc/{split}/{video}.h5"),
    output:
        "results/{dataset}/stc/{split}.h5",
    log:
        "results/logs/{dataset}/stc/{split}.log",
    benchmark:
        "results/benchmarks/{dataset}/stc/{split}.tsv"
    conda:
        f"{ENVS}/vision.yaml"
    shell:
        "{VAD} stc-gather --split {wildcards.split:q} --parts {input.parts:q} --out {output:q} 2> {log:q}"
