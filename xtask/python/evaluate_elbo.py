"""One evaluation of PyTorch's and tinyvae's VAEs: the same code, test images and z draws.

usage: python3 evaluate_elbo.py SCRIPT DATA_DIR DRAWS OUT_JSON MODEL...

SCRIPT is the PyTorch reference whose architecture every MODEL has: its model class is taken
by running the script until it builds its optimizer (nothing is trained). A MODEL is either a
state dict the reference saved (`seeded_reference.py`) or a tinyvae checkpoint
(`.safetensors`), whose weights are moved into the same class (tinyvae keeps images and
feature maps height, width, channels; PyTorch channels first).

For each model: the test -ELBO (summed BCE on the intensities + the closed-form KL, nats per
test image), once per draw, each draw one z per test image; draw d uses the same noise for
every model. Also the KL alone and the squared error per pixel of the reconstruction at
z = mu, which are deterministic: for a tinyvae checkpoint they must equal what `trainer eval`
prints, which checks the moved weights.
"""
import gzip
import json
import math
import os
import runpy
import struct
import sys

import numpy as np
import torch
from torch.nn import functional as F

BATCH = 500
NOISE_SEED = 2026


class _Built(Exception):
    """Raised from the reference's optimizer: its model exists, training must not start."""


def reference_class(script, data):
    """The reference script's model class, by running it up to its optimizer."""
    found = {}
    real_adam = torch.optim.Adam

    class Stop:
        def __init__(self, *args, **kwargs):
            scope = sys._getframe(1).f_globals
            if isinstance(scope.get("model"), torch.nn.Module):
                found["class"] = type(scope["model"])
            raise _Built()

    torch.optim.Adam = Stop
    argv = sys.argv
    sys.argv = [script, "2", "0", data if data.endswith("/") else data + "/"]
    try:
        runpy.run_path(script, run_name="__main__")
    except _Built:
        pass
    finally:
        torch.optim.Adam = real_adam
        sys.argv = argv
    if "class" not in found:
        sys.exit(f"{script}: no global `model` when it built its Adam optimizer")
    return found["class"]


def test_images(data):
    """The test split, (n, rows * cols) intensities in [0, 1]."""
    name = os.path.join(data, "t10k-images-idx3-ubyte")
    raw = open(name, "rb").read() if os.path.exists(name) else gzip.open(name + ".gz").read()
    n, rows, cols = struct.unpack(">III", raw[4:16])
    pixels = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, rows * cols)
    return torch.from_numpy(pixels.astype(np.float32) / 255.0), (rows, cols)


def read_safetensors(path):
    """Every F32 tensor of a safetensors file, by name."""
    raw = open(path, "rb").read()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + size])
    out = {}
    for name, t in header.items():
        if name == "__metadata__" or t["dtype"] != "F32":
            continue
        a, b = t["data_offsets"]
        values = np.frombuffer(raw[8 + size + a:8 + size + b], dtype="<f4")
        out[name] = torch.from_numpy(values.reshape(t["shape"]).copy())
    return out


def layers_of(model, example):
    """The model's parameterised layers in the order a forward pass calls them, each with the
    shapes it took and gave."""
    calls = []
    hooks = [m.register_forward_hook(lambda m, i, o: calls.append((m, i[0].shape, o.shape)))
             for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d,
                                                        torch.nn.ConvTranspose2d))]
    with torch.no_grad():
        mu, _ = encode(model, example)
        model.decode_logits(mu)
    for h in hooks:
        h.remove()
    return calls


def encode(model, x):
    """The reference's encode, on images shaped as its first layer takes them."""
    first = next(m for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)))
    if isinstance(first, torch.nn.Conv2d):
        side = int(math.isqrt(x.shape[1] // first.in_channels))
        x = x.view(x.shape[0], first.in_channels, side, side)
    return model.encode(x)


def hwc_to_chw_columns(w, chw):
    """A dense layer's weight (out, h*w*c) whose input is a feature map flattened HWC, as the
    same layer over the map flattened CHW."""
    c, h, wd = chw
    return w.reshape(w.shape[0], h, wd, c).permute(0, 3, 1, 2).reshape(w.shape[0], -1)


def hwc_to_chw_rows(t, chw):
    """A dense layer's weight (h*w*c, in) or bias whose output is read as a feature map HWC."""
    c, h, wd = chw
    rest = t.shape[1:]
    return t.reshape(h, wd, c, *rest).permute(2, 0, 1, *range(3, 3 + len(rest))).reshape(t.shape)


def load_tinyvae(cls, path, example):
    """A tinyvae checkpoint's weights in the reference's class: tinyvae's encoder layers in
    order, its last split into mu and log-variance, then its decoder layers."""
    t = read_safetensors(path)
    enc = sorted({int(k.split(".")[1]) for k in t if k.startswith("enc.")})
    dec = sorted({int(k.split(".")[1]) for k in t if k.startswith("dec.")})
    ours = [("enc", i) for i in enc[:-1]] + [("mu", enc[-1]), ("lv", enc[-1])] + \
        [("dec", i) for i in dec]
    model = cls()
    calls = layers_of(model, example)
    if len(calls) != len(ours):
        sys.exit(f"{path}: {len(ours)} layers against the reference's {len(calls)}")
    with torch.no_grad():
        for k, ((m, shape_in, shape_out), (net, i)) in enumerate(zip(calls, ours)):
            prefix = "enc" if net in ("mu", "lv") else net
            w, b = t[f"{prefix}.{i}.w"].clone(), t[f"{prefix}.{i}.b"].clone()
            if net in ("mu", "lv"):
                half = w.shape[0] // 2
                part = slice(0, half) if net == "mu" else slice(half, 2 * half)
                w, b = w[part], b[part]
            if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                w = w.permute(0, 3, 1, 2)  # (out, k, k, in) -> channels first
            else:
                # What it reads: the layer before (for log-variance, the one before mu).
                source = k - 2 if net == "lv" else k - 1
                before = calls[source][2] if source >= 0 else None
                after = calls[k + 1][1] if k + 1 < len(calls) and net != "mu" else None
                if before is not None and len(before) == 4:
                    w = hwc_to_chw_columns(w, tuple(before[1:]))
                if after is not None and len(after) == 4:
                    w = hwc_to_chw_rows(w, tuple(after[1:]))
                    b = hwc_to_chw_rows(b, tuple(after[1:]))
            if tuple(w.shape) != tuple(m.weight.shape):
                sys.exit(f"{path}: layer {prefix}.{i} has {tuple(w.shape)}, the reference "
                         f"{tuple(m.weight.shape)}")
            m.weight.copy_(w)
            m.bias.copy_(b)
    return model


def evaluate(model, x, draws):
    """-ELBO per draw, KL, and squared error per pixel at z = mu, over the test images."""
    model.eval()
    noise = torch.Generator().manual_seed(NOISE_SEED)
    per_draw = [0.0] * draws
    kl_sum = se = 0.0
    with torch.no_grad():
        for start in range(0, x.shape[0], BATCH):
            xb = x[start:start + BATCH]
            mu, lv = encode(model, xb)
            kl = -0.5 * torch.sum(1 + lv - mu.pow(2) - lv.exp())
            kl_sum += kl.item()
            at_mu = torch.sigmoid(model.decode_logits(mu).flatten(1))
            se += ((at_mu - xb) ** 2).sum().item()
            for d in range(draws):
                z = mu + torch.randn(mu.shape, generator=noise) * torch.exp(0.5 * lv)
                logits = model.decode_logits(z).flatten(1)
                bce = F.binary_cross_entropy_with_logits(logits, xb, reduction="sum")
                per_draw[d] += (bce + kl).item()
    n = x.shape[0]
    return {"neg_elbo_per_draw": [v / n for v in per_draw], "kl": kl_sum / n,
            "mse": se / (n * x.shape[1])}


def main():
    if len(sys.argv) < 6:
        sys.exit(__doc__)
    script, data, draws, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    torch.set_num_threads(2)
    cls = reference_class(script, data)
    x, _ = test_images(data)
    results = []
    for path in sys.argv[5:]:
        if path.endswith(".safetensors"):
            model = load_tinyvae(cls, path, x[:2])
        else:
            model = cls()
            model.load_state_dict(torch.load(path, weights_only=True))
        r = evaluate(model, x, draws)
        r["model"] = path
        results.append(r)
        mean = sum(r["neg_elbo_per_draw"]) / draws
        print(f"{path}: test -ELBO {mean:.3f} over {draws} draws (KL {r['kl']:.3f})", flush=True)
    with open(out, "w") as f:
        json.dump({"images": x.shape[0], "draws": draws, "noise_seed": NOISE_SEED,
                   "models": results}, f, indent=1)


if __name__ == "__main__":
    main()
