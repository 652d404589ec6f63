"""Test-wide settings: one torch thread (tiny models run much faster without OpenMP contention)."""

import torch

torch.set_num_threads(1)
