"""Optimal contracts where models are the reward.

See docs/contract.md (Wang, Wu, Liu, Low, AAAI 2025).
"""
