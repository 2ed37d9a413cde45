"""torchrun / DistributedDataParallel plumbing. One process without torchrun is world size 1."""
import os

import torch
import torch.distributed as dist


def init_distributed(device):
    """Join the process group when launched by torchrun. Returns (rank, world_size, device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, device
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    elif device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return dist.get_rank(), dist.get_world_size(), device


def is_distributed():
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank():
    return dist.get_rank() if is_distributed() else 0


def is_main():
    return rank() == 0


def barrier():
    if is_distributed():
        dist.barrier()


def broadcast_object(obj, src=0):
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather_objects(obj):
    """Every process's `obj`, in rank order (a one-element list without torchrun)."""
    if not is_distributed():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def mean_over_processes(tensors):
    """Average a dict of scalar tensors over processes (for logging only)."""
    if not is_distributed():
        return tensors
    keys = sorted(tensors)
    stacked = torch.stack([tensors[k].float() for k in keys])
    dist.all_reduce(stacked)
    stacked /= dist.get_world_size()
    return dict(zip(keys, stacked))


def cleanup():
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def unwrap(module):
    """The module inside DistributedDataParallel and/or torch.compile."""
    while hasattr(module, "module") or hasattr(module, "_orig_mod"):
        module = getattr(module, "module", None) or getattr(module, "_orig_mod")
    return module
