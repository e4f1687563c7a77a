"""Semantic are Beacons: semantic analysis of PEFT knowledge learning (Wang & Li, Findings of ACL 2024)."""

__version__ = "0.1.0"
