"""Runs a PyTorch reference script, unmodified, under another seed, and keeps its weights.

usage: python3 seeded_reference.py SEED WEIGHTS_OUT SCRIPT [SCRIPT_ARGS...]

Every torch.manual_seed(...) call the script makes takes SEED instead of its own value (the
reference scripts seed once, before building their data loaders and model). After the script
ends, the trained model (the script's global `model`) is saved as a state dict to
WEIGHTS_OUT, for `evaluate_elbo.py` to score beside tinyvae's checkpoints with the same draws.
Used by `cargo xtask quality`.
"""
import runpy
import sys

import torch


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    seed, out, script = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    original = torch.manual_seed
    replaced = []

    def seeded(value):
        replaced.append(value)
        return original(seed)

    torch.manual_seed = seeded
    sys.argv = [script] + sys.argv[4:]
    scope = runpy.run_path(script, run_name="__main__")
    torch.manual_seed = original
    if not replaced:
        sys.exit(f"{script}: it never calls torch.manual_seed, so its seed cannot be set")
    model = scope.get("model")
    if not isinstance(model, torch.nn.Module):
        sys.exit(f"{script}: no global `model` (a torch.nn.Module) after the run")
    torch.save(model.state_dict(), out)
    print(f"seeded: {script} ran with torch.manual_seed({seed}) in place of "
          f"{', '.join(map(str, replaced))}; weights in {out}", flush=True)


if __name__ == "__main__":
    main()
