"""Copy a run's best weights into the package as the shipped model (float16 safetensors + JSON sidecar).

    python benchmarks/ship_weights.py runs/cubic/best.safetensors cubic
"""

from __future__ import annotations

import sys
from pathlib import Path

from powdersolve.weights import WEIGHTS_DIR, load_model, read_sidecar, save_model


def main() -> None:
    src, system = Path(sys.argv[1]), sys.argv[2]
    model, side = load_model(src)
    meta = dict(side.get("metadata", {}), source_run=str(src.parent), source_sha256=side["sha256"])
    out = save_model(model, WEIGHTS_DIR / f"{system}.safetensors", meta, half=True)
    print(out, out.stat().st_size // 1024, "KiB", read_sidecar(out)["sha256"])


if __name__ == "__main__":
    main()
