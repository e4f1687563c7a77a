"""Heterogeneous teacher-student LLM distillation with intermediate-layer alignment (Zhai, Wang & Li, CCL 2024)."""

__version__ = "0.1.0"
