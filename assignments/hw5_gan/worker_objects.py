"""Objects hw5's hidden tests build in the student's worker with ``make(name, ...)``: loaded there
before any student cell. Students can read this file (it runs in their process): no answers."""
from __future__ import annotations

__all__ = ["mixture_sampler"]


def mixture_sampler(centers, std):
    """``sampler(batch_size, generator)``: an isotropic Gaussian mixture with equal weights."""
    import torch

    def sample(batch_size, generator=None):
        device = generator.device if generator is not None else torch.device("cpu")
        which = torch.randint(len(centers), (batch_size,), generator=generator, device=device)
        noise = torch.randn(batch_size, centers.shape[1], generator=generator, device=device,
                            dtype=centers.dtype)
        return (centers[which.to(centers.device)] + std * noise.to(centers.device))
    return sample
