"""torchrun / DistributedDataParallel plumbing (docs/multi_gpu.md): NCCL on cuda:LOCAL_RANK, gloo on
the CPU. Without torchrun the world size is 1 and every collective returns its input."""
import atexit
import os

import torch
import torch.distributed as dist


def init_distributed(device: torch.device) -> tuple[int, int, torch.device]:
    """(rank, world_size, device), joining torchrun's process group (cuda:LOCAL_RANK)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1, device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        if device.type == "cuda":  # device_id: NCCL binds this GPU at once (barriers know which)
            dist.init_process_group(backend="nccl", device_id=device)
        else:
            dist.init_process_group(backend="gloo")
        atexit.register(cleanup)
    return dist.get_rank(), dist.get_world_size(), device


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def broadcast_object(obj, src: int = 0):
    """Process `src`'s `obj` on every process."""
    box = [obj]
    if is_distributed():
        dist.broadcast_object_list(box, src=src)
    return box[0]


def gather_objects(obj) -> list:
    """Every process's `obj`, in rank order."""
    out = [obj] * world_size()
    if is_distributed():
        dist.all_gather_object(out, obj)
    return out


def sum_over_processes(tensor: torch.Tensor) -> torch.Tensor:
    """The element-wise sum over processes (a new tensor; a NaN anywhere is a NaN everywhere)."""
    out = tensor.detach().clone()
    if is_distributed():
        dist.all_reduce(out)
    return out


def cleanup() -> None:
    """Leave the process group (every process calls it; safe to call twice)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The module inside DistributedDataParallel and/or torch.compile."""
    while hasattr(module, "module") or hasattr(module, "_orig_mod"):
        module = getattr(module, "module", None) or getattr(module, "_orig_mod")
    return module
