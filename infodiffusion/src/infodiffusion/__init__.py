"""InfoDiffusion: information-entropy-aware text diffusion (Wang, Li & Li, Findings of EMNLP 2023)."""

__version__ = "0.1.0"
