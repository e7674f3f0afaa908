"""Float32 -> float16 bits as numpy rounds them (IEEE round to nearest, ties to even; PyTorch's
tensor.half() rounds the same way), for test/io/half.test.ts. Run: python3 test/data/make_half.py"""
import json
import numpy as np

rng = np.random.default_rng(0)
special = [0.0, -0.0, 1.0, -2.0, 0.5, 65504.0, 65519.0, 65520.0, 1e6, -1e6, 6.103515625e-05, 6.0e-05, 1e-5, 5.960464477539063e-08,
           2.9802322387695312e-08, 3.0e-08, 1.0e-9, 1 + 2**-11, 1 + 3 * 2**-11, 1 + 2**-12, 2048 + 1, 2048 + 3, 0.1, 0.2, 0.3, 1 / 3]
values = np.array(special + list(rng.normal(0, 1, 200)) + list(rng.normal(0, 1e-4, 100)) + list(rng.normal(0, 1e4, 100)), dtype=np.float32)
bits = values.astype(np.float16).view(np.uint16)
with open('test/data/half.json', 'w') as f:
    json.dump({'values': [float(v) for v in values], 'bits': [int(b) for b in bits]}, f)
