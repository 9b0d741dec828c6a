# The `gpu` resource each GPU rule declares (gpu=1): how many GPU jobs may run at once on this machine.
#
# Local scope: under SLURM it never caps submissions (each job gets its own GPU from SLURM); it caps the
# jobs Snakemake runs itself. Its size: the user's `--resources gpu=K` (or a profile's `resources:`) when
# given; otherwise the number of GPUs of this machine, counted without importing torch (fmwsss.gpu_slots:
# /proc/driver/nvidia/gpus, else `nvidia-smi -L`, restricted by CUDA_VISIBLE_DEVICES), and 1 without a GPU
# so GPU rules run on the CPU one at a time. Each job then takes its own GPU (fmwsss.devices.job_device).

from fmwsss.gpu_slots import gpu_resource


resource_scopes:
    gpu="local",


if "gpu" not in workflow.global_resources:
    workflow.global_resources["gpu"] = gpu_resource()

