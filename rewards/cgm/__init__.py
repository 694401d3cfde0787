"""Synthetic-data rewards: the ρ-Shapley LP, weighted sampling, evaluation.

See docs/cgm.md §6-§8 (Tay, Xu, Foo, Low, AAAI 2022).
"""
