"""LEMoE: lifelong model editing with a mixture-of-experts adaptor (Wang & Li, EMNLP 2024)."""

__version__ = "0.1.0"
