"""Gradient rewards: cosine gradient Shapley values, sparsified downloads.

See docs/cgsv.md (Xu, Lyu, Ma, Miao, Foo, Low, NeurIPS 2021).
"""
