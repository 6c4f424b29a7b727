#!/usr/bin/env python3
"""Writes model-ready .npz files for `carve compress` from ../shared/compression-data, for the datasets
whose stored arrays are not the model's inputs as they are (ppocr_cls_rendered stores the resized grey
crops; the model takes the normalized 3-channel image). Uses the data folder's own `ppocr_input`, so the
inputs are exactly what its `score.py` feeds ONNX Runtime.

    python bench/compress_data.py OUT_DIR
    carve compress ../shared/models/ppocr_mobile_v2_cls/model.onnx --calib OUT_DIR/ppocr.npz \\
        --calib-indices calib_idx --eval OUT_DIR/ppocr.npz --labels labels --metric accuracy -o ... --report ...
"""
import sys
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "compression-data"
sys.path.insert(0, str(DATA))
from cdata_common import ppocr_input  # noqa: E402


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    out.mkdir(parents=True, exist_ok=True)
    z = np.load(DATA / "ppocr_cls_rendered.npz")
    x = np.stack([ppocr_input(img, int(w)) for img, w in zip(z["images"], z["widths"])]).astype(np.float32)
    np.savez(out / "ppocr.npz", x=x, labels=z["labels"].astype(np.int64), calib_idx=z["calib_idx"])
    print(f"wrote {out / 'ppocr.npz'}: x {x.shape}")


if __name__ == "__main__":
    main()
