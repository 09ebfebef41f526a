"""A small but real training script: a one-hidden-layer network on two interleaved spirals.

Reads its hyperparameters from the JSON file given by --config (rendered by
`mrl makebatch` from conf.json), trains with full-batch gradient descent in numpy, and
writes what mrl reads: metrics.jsonl (one line per epoch) and metrics.json (the final
summary), both in the current directory (the sub-experiment folder).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

import numpy as np


def spirals(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    t = np.sqrt(rng.uniform(0.05, 1, n)) * 3 * np.pi
    arm = rng.integers(0, 2, n)
    r = t / (3 * np.pi)
    x = np.stack([r * np.cos(t + np.pi * arm), r * np.sin(t + np.pi * arm)], axis=1)
    return x + rng.normal(0, 0.03, x.shape), arm.astype(float)


Array = np.ndarray
# name -> (the activation, its derivative written in terms of its output)
ACTIVATIONS: dict[str, tuple[Callable[[Array], Array], Callable[[Array], Array]]] = {
    "tanh": (np.tanh, lambda h: 1 - h**2),
    "relu": (lambda z: np.maximum(z, 0), lambda h: (h > 0).astype(float)),
}


def forward(params: dict[str, np.ndarray], x: np.ndarray, act: str = "tanh") -> tuple[np.ndarray, np.ndarray]:
    h = ACTIVATIONS[act][0](x @ params["w1"] + params["b1"])
    p = 1 / (1 + np.exp(-(h @ params["w2"] + params["b2"])))
    return h, p[:, 0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="conf.json")
    with open(ap.parse_args().config) as f:
        cfg = json.load(f)
    rng = np.random.default_rng(cfg["seed"])
    x, y = spirals(600, rng)
    xt, yt = spirals(400, rng)
    hidden = cfg["hidden"]
    act = cfg.get("activation", "tanh")
    params = {
        "w1": rng.normal(0, 1.5, (2, hidden)),
        "b1": np.zeros(hidden),
        "w2": rng.normal(0, 1 / np.sqrt(hidden), (hidden, 1)),
        "b2": np.zeros(1),
    }
    with open("metrics.jsonl", "w") as log:
        for step in range(1, cfg["epochs"] + 1):
            h, p = forward(params, x, act)
            loss = float(-np.mean(y * np.log(p + 1e-9) + (1 - y) * np.log(1 - p + 1e-9)))
            g = (p - y)[:, None] / len(y)
            gh = (g @ params["w2"].T) * ACTIVATIONS[act][1](h)
            params["w2"] -= cfg["lr"] * h.T @ g
            params["b2"] -= cfg["lr"] * g.sum(0)
            params["w1"] -= cfg["lr"] * x.T @ gh
            params["b1"] -= cfg["lr"] * gh.sum(0)
            if step % 10 == 0 or step == cfg["epochs"]:
                acc = float(np.mean((forward(params, xt, act)[1] > 0.5) == yt))
                log.write(json.dumps({"step": step, "loss": round(loss, 5), "acc": round(acc, 4)}) + "\n")
    print(f"lr={cfg['lr']} hidden={hidden}: loss {loss:.4f}, test accuracy {acc:.3f}")
    with open("metrics.json", "w") as f:
        json.dump({"loss": round(loss, 5), "acc": round(acc, 4)}, f)


if __name__ == "__main__":
    main()
