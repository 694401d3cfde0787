"""Conditional GANs trained with PyTorch Lightning (docs/cgm.md §3)."""
