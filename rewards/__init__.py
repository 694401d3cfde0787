"""Incentive mechanisms, one wing per paper; two shared rooms at the top.

- `rewards.cgm`: synthetic-data rewards (docs/cgm.md §6-§8).
- `rewards.cgsv`: gradient rewards in federated learning (docs/cgsv.md).
- `rewards.nash`: Nash-bargaining aggregation and fair meta-learning (docs/nash.md).
- `rewards.contract`: optimal contracts with models as rewards (docs/contract.md).
- `rewards.classifiers` and `rewards.metrics`: the small classifiers and the
  fairness / performance metrics that several wings share.
"""
