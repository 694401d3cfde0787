"""Nash-bargaining aggregation and two-stage fairness-aware meta-learning.

See docs/nash.md (Zeng et al., NeurIPS 2024; Navon et al., ICML 2022):
``bargaining`` solves the NBS (§2); ``lookahead`` computes the hypergradients and
the direction of each meta batch and ``fairmeta`` trains (§3); ``evaluation`` holds
the test metrics, the ``metrics.csv`` columns and the summaries (§5).
"""
