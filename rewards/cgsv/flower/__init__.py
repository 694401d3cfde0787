"""The CGSV mechanism on Flower's deployment engine (docs/federated.md).

- `files`: the plan the coordinator hands its ServerApp and the party files each
  SuperNode reads (NumPy ``.npz``; no Flower import).
- `records`: arrays and configs in and out of Flower's ``RecordDict`` (the only
  wire format; one message per party and round).
- `client_app`: the ClientApp, a torch-free shim in front of the party's worker.
- `worker`: the party's long-lived worker (torch, its `rewards.cgsv.party.FLParty`
  state, its data file) next to its SuperNode; `worker.train_step` is the round.
- `supernode`: ``flower-supernode`` with shorter waits (local runs).
- `superexec`: ``flower-superexec`` that forks each message's ClientApp process
  from one that imported Flower and the ClientApp once (``--isolation process``).
- `server_app`: the ServerApp, the lock-step loop of `rewards.cgsv.simulation`
  played through Flower's ``Grid``.

The round logic stays in `rewards.cgsv`; this package only moves arrays.
"""
