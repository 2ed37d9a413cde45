"""torchrun / DistributedDataParallel plumbing. One process without torchrun is world size 1.

Launched by torchrun (single node or multi-node: the usual rendezvous sets RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR and MASTER_PORT), each process joins the default process group over
env://: NCCL on cuda:LOCAL_RANK, gloo on the CPU. Every collective helper below is a no-op
(returns its input) in a single process, so callers need no special case.
"""
import atexit
import os

import torch
import torch.distributed as dist


def init_distributed(device):
    """Join the process group when launched by torchrun. Returns (rank, world_size, device).

    On CUDA each process takes cuda:LOCAL_RANK (a --device naming another GPU is overridden:
    one process per GPU). The group is destroyed at exit if nobody did it before.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        if device.type == "cuda":
            # device_id: NCCL binds this GPU at once (barriers then know which GPU to use)
            dist.init_process_group(backend="nccl", device_id=device)
        else:
            dist.init_process_group(backend="gloo")
        atexit.register(cleanup)
    return dist.get_rank(), dist.get_world_size(), device


def is_distributed():
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank():
    return dist.get_rank() if is_distributed() else 0


def world_size():
    return dist.get_world_size() if is_distributed() else 1


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


def sum_over_processes(tensor):
    """The element-wise sum of `tensor` over processes (a new tensor; no gradient).

    A non-finite value on any process makes the sum non-finite on every process, so one call
    gives every process the same NaN verdict (and the same stop flags) at once."""
    out = tensor.detach().clone()
    if is_distributed():
        dist.all_reduce(out)
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
    """Leave the process group (every process calls it; safe to call twice)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def unwrap(module):
    """The module inside DistributedDataParallel and/or torch.compile."""
    while hasattr(module, "module") or hasattr(module, "_orig_mod"):
        module = getattr(module, "module", None) or getattr(module, "_orig_mod")
    return module
