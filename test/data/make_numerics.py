#!/usr/bin/python3
"""Reference values for the resampling / top-k helpers, produced by PyTorch.

Run from the repository root with Debian's python3-torch (not the pyenv python on PATH):

    /usr/bin/python3 test/data/make_numerics.py

It writes test/data/numerics.json, which test/tensor/{resample,topk,ops}.test.ts read.

Inputs are not stored: they come from `hash_input`, an integer formula that the TypeScript tests
reproduce bit-for-bit (integer arithmetic below 2**53, one correctly rounded division, then
rounding to float32), which keeps the file small. Resampling weights are measured by resizing an
identity basis (plane i = e_i along the resized axis), so each case yields PyTorch's whole
[out, in] matrix. Everything is float32 on the CPU, as PS3 runs it.
"""
import json
import math
import platform
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.manual_seed(0)
OUT = 'test/data/numerics.json'


def hash_input(n, salt):
    """n pseudo-random float32 values in [-0.5, 0.5); mirrored by hashInput() in the tests."""
    vals = []
    for i in range(n):
        q = (i * i * 7919 + i * 104729 + salt * 15485863 + 1) % 1000003
        vals.append(q / 1000003 - 0.5)
    return torch.tensor(np.array(vals, dtype=np.float32))


def f32(v):
    """The shortest decimal that reads back as the same float32 (the tests apply Math.fround)."""
    return float(repr(np.float32(v)))


def f32list(t):
    """float32 values as shortest decimals; NaN (not valid JSON) as null."""
    return [None if math.isnan(v) else f32(v) for v in t.detach().reshape(-1).to(torch.float32).tolist()]


def interp(x, size, mode):
    """F.interpolate on NCHW for one of the helper's mode names."""
    if mode == 'bicubic':
        return F.interpolate(x, size=size, mode='bicubic', align_corners=False, antialias=False)
    if mode == 'bicubic-antialias':
        return F.interpolate(x, size=size, mode='bicubic', align_corners=False, antialias=True)
    if mode == 'nearest':
        return F.interpolate(x, size=size, mode='nearest')
    if mode == 'area':
        return F.interpolate(x, size=size, mode='area')
    raise ValueError(mode)


def matrix_case(mode, n_in, n_out):
    """PyTorch's [out, in] weights along the row axis (the column axis is 1 -> 1, an identity)."""
    eye = torch.eye(n_in, dtype=torch.float32).reshape(n_in, 1, n_in, 1)
    m = interp(eye, (n_out, 1), mode)[:, 0, :, 0].T.contiguous()  # [out, in]
    rows = []
    for o in range(n_out):
        nz = torch.nonzero(m[o]).reshape(-1).tolist()
        if not nz:
            rows.append([0])
            continue
        first, last = nz[0], nz[-1]
        rows.append([first] + f32list(m[o, first:last + 1]))
    return {'mode': mode, 'in': n_in, 'out': n_out, 'rows': rows}


def resize_case(mode, count, h, w, out_h, out_w, salt):
    x = hash_input(count * h * w, salt).reshape(1, count, h, w)
    y = interp(x, (out_h, out_w), mode)
    return {'mode': mode, 'count': count, 'h': h, 'w': w, 'outH': out_h, 'outW': out_w, 'salt': salt, 'out': f32list(y)}


def max_pool_case(count, h, w, out_h, out_w, salt, nan_at=(), quantum=None):
    x = hash_input(count * h * w, salt)
    if quantum is not None:
        x = torch.round(x / quantum) * quantum  # many exact ties
    for i in nan_at:
        x[i] = float('nan')
    y = F.adaptive_max_pool2d(x.reshape(1, count, h, w), (out_h, out_w))
    case = {'count': count, 'h': h, 'w': w, 'outH': out_h, 'outW': out_w, 'salt': salt, 'nanAt': list(nan_at), 'out': f32list(y)}
    if quantum is not None:
        case['quantum'] = quantum
    return case


def bins_case(n_in, n_out, full):
    """Adaptive-pool bins read back from PyTorch: max of arange is end - 1, max of -arange is -start."""
    x = torch.arange(n_in, dtype=torch.float64).reshape(1, 1, n_in)
    end = (F.adaptive_max_pool1d(x, n_out)[0, 0].long() + 1).tolist()
    start = (-F.adaptive_max_pool1d(-x, n_out)[0, 0].long()).tolist()
    case = {'in': n_in, 'out': n_out, 'startSum': sum(start), 'endSum': sum(end)}
    if full:
        case['start'], case['end'] = start, end
    else:
        # Keep only the bins where float32 index arithmetic would be off by one (PyTorch uses exact
        # integer arithmetic), plus the first and last bin.
        picks = {0, n_out - 1}
        for a in range(n_out):
            s32 = math.floor(np.float32(np.float32(a * n_in) / np.float32(n_out)))
            e32 = math.ceil(np.float32(np.float32((a + 1) * n_in) / np.float32(n_out)))
            if s32 != start[a] or e32 != end[a]:
                picks.add(a)
        case['at'] = {str(a): [start[a], end[a]] for a in sorted(picks)}
    return case


def to_nchw(x, row_axis):
    """[..., H, W, ...] with H at row_axis -> [pre, post, H, W] (post dims act as channels)."""
    shape = list(x.shape)
    pre = int(np.prod(shape[:row_axis])) if row_axis > 0 else 1
    post = int(np.prod(shape[row_axis + 2:])) if row_axis + 2 < len(shape) else 1
    h, w = shape[row_axis], shape[row_axis + 1]
    return x.reshape(pre, h, w, post).permute(0, 3, 1, 2), (shape[:row_axis], shape[row_axis + 2:])


def from_nchw(y, before, after):
    pre, post, h, w = y.shape
    return y.permute(0, 2, 3, 1).reshape(*before, h, w, *after)


def op_case(kind, shape, row_axis, out_h, out_w, salt, r_salt, mode=None, crop=None, quantum=None, nan_at=()):
    """Forward value and gradient of loss = sum(op(x) * R) w.r.t. x, through torch autograd."""
    n = int(np.prod(shape))
    x = hash_input(n, salt)
    if quantum is not None:
        x = torch.round(x / quantum) * quantum
    for i in nan_at:
        x[i] = float('nan')
    x = x.reshape(shape).requires_grad_(True)
    xn, (before, after) = to_nchw(x, row_axis)
    if kind == 'resize2d':
        yn = interp(xn, (out_h, out_w), mode)
    else:
        yn = F.adaptive_max_pool2d(xn, (out_h, out_w))
    y = from_nchw(yn, before, after)
    crop_h, crop_w = crop if crop is not None else (out_h, out_w)
    idx = [slice(None)] * y.dim()
    idx[row_axis], idx[row_axis + 1] = slice(0, crop_h), slice(0, crop_w)
    y = y[tuple(idx)]
    r = hash_input(y.numel(), r_salt).reshape(y.shape)
    (y * r).sum().backward()
    case = {'kind': kind, 'shape': list(shape), 'rowAxis': row_axis, 'outH': out_h, 'outW': out_w,
            'salt': salt, 'rSalt': r_salt, 'out': f32list(y), 'grad': f32list(x.grad)}
    if mode is not None:
        case['mode'] = mode
    if crop is not None:
        case['cropH'], case['cropW'] = crop
    if quantum is not None:
        case['quantum'] = quantum
    if nan_at:
        case['nanAt'] = list(nan_at)
    return case


def topk_values(vals):
    return ['NaN' if math.isnan(v) else ('Infinity' if v == math.inf else ('-Infinity' if v == -math.inf else v)) for v in vals]


def topk_case(values, k, note):
    v = torch.tensor(np.array(values, dtype=np.float32))
    order = torch.sort(-v, stable=True).indices[:k].tolist()
    return {'note': note, 'values': topk_values(f32list_nan(v)), 'k': k, 'indices': order}


def f32list_nan(t):
    return [f32(v) for v in t.tolist()]


def main():
    torch.set_grad_enabled(True)
    data = {
        'meta': {
            'generator': 'test/data/make_numerics.py',
            'torch': torch.__version__,
            'numpy': np.__version__,
            'python': platform.python_version(),
            'hashInput': 'x[i] = f32(((i*i*7919 + i*104729 + salt*15485863 + 1) % 1000003) / 1000003 - 0.5)',
        },
    }

    with torch.no_grad():
        data['matrices'] = [matrix_case(m, a, b) for m, a, b in [
            # bicubic, align_corners=False, antialias=False
            ('bicubic', 37, 11), ('bicubic', 560, 56), ('bicubic', 4, 40), ('bicubic', 7, 16),
            ('bicubic', 5, 9), ('bicubic', 30, 12), ('bicubic', 40, 16), ('bicubic', 20, 56),
            ('bicubic', 28, 40), ('bicubic', 8, 8), ('bicubic', 1, 5), ('bicubic', 6, 12), ('bicubic', 9, 2), ('bicubic', 9, 1),
            # antialias=True, down and up
            ('bicubic-antialias', 4, 8), ('bicubic-antialias', 4, 40), ('bicubic-antialias', 27, 54),
            ('bicubic-antialias', 40, 13), ('bicubic-antialias', 37, 11), ('bicubic-antialias', 560, 56),
            ('bicubic-antialias', 7, 7), ('bicubic-antialias', 1, 3), ('bicubic-antialias', 9, 2), ('bicubic-antialias', 9, 1),
            # nearest, non-integer ratios, exactly 2x, identity, down
            ('nearest', 4, 6), ('nearest', 4, 40), ('nearest', 8, 6), ('nearest', 6, 8), ('nearest', 4, 30),
            ('nearest', 3, 7), ('nearest', 5, 10), ('nearest', 7, 14), ('nearest', 10, 5), ('nearest', 9, 9),
            ('nearest', 13, 27), ('nearest', 560, 56), ('nearest', 27, 54), ('nearest', 9, 1),
            # area = adaptive average pooling (down, and up where bins repeat)
            ('area', 560, 40), ('area', 8, 6), ('area', 40, 8), ('area', 7, 3), ('area', 5, 5), ('area', 3, 7),
            ('area', 10, 3), ('area', 54, 4), ('area', 9, 1),
        ]]

        data['resize'] = [resize_case(*c) for c in [
            ('bicubic', 2, 37, 37, 11, 11, 1), ('bicubic', 1, 30, 40, 12, 16, 2), ('bicubic', 1, 20, 28, 56, 40, 3),
            ('bicubic', 1, 4, 5, 40, 9, 4), ('bicubic', 2, 7, 5, 16, 9, 5), ('bicubic', 1, 560, 48, 56, 12, 6),
            ('bicubic', 1, 6, 6, 12, 12, 7),
            ('bicubic-antialias', 1, 4, 4, 8, 8, 8), ('bicubic-antialias', 1, 4, 6, 40, 9, 9),
            ('bicubic-antialias', 1, 27, 10, 54, 20, 10), ('bicubic-antialias', 2, 40, 40, 13, 13, 11),
            ('bicubic-antialias', 1, 560, 48, 56, 12, 12),
            ('nearest', 1, 4, 4, 6, 6, 13), ('nearest', 1, 4, 3, 40, 7, 14), ('nearest', 2, 8, 6, 6, 8, 15),
            ('nearest', 1, 3, 7, 7, 3, 16), ('nearest', 1, 5, 5, 10, 10, 17),
            ('area', 1, 560, 16, 40, 8, 18), ('area', 2, 8, 8, 6, 6, 19), ('area', 1, 40, 40, 8, 8, 20),
            ('area', 1, 7, 7, 3, 3, 21), ('area', 1, 40, 7, 8, 3, 22),
        ]]

        data['maxPool'] = [
            max_pool_case(1, 54, 54, 4, 4, 30), max_pool_case(1, 54, 54, 27, 27, 31),
            max_pool_case(2, 10, 10, 3, 3, 32), max_pool_case(1, 7, 9, 3, 4, 33),
            max_pool_case(1, 10, 10, 3, 3, 34, nan_at=(0, 55)),
            max_pool_case(1, 7, 9, 3, 4, 35, quantum=0.25),
        ]

        data['bins'] = [bins_case(a, b, True) for a, b in [(54, 4), (54, 27), (10, 3), (7, 3), (9, 4), (560, 40), (3, 7), (8, 6)]]
        data['bins'] += [bins_case(a, b, False) for a, b in [(5000, 4999), (4999, 4001), (8191, 8190)]]

    data['ops'] = [
        op_case('resize2d', (1, 7, 5, 3), 1, 16, 9, 40, 41, mode='bicubic'),
        op_case('resize2d', (2, 37, 11), 1, 11, 4, 42, 43, mode='bicubic'),
        op_case('resize2d', (4, 4, 2), 0, 40, 40, 44, 45, mode='bicubic-antialias', crop=(13, 17)),
        op_case('resize2d', (1, 27, 27, 2), 1, 54, 54, 46, 47, mode='bicubic-antialias', crop=(20, 24)),
        op_case('resize2d', (40, 24), 0, 13, 8, 48, 49, mode='bicubic-antialias'),
        op_case('resize2d', (1, 2, 40, 8), 2, 8, 3, 50, 51, mode='area'),
        op_case('resize2d', (6, 8, 2), 0, 8, 6, 52, 53, mode='nearest'),
        op_case('resize2d', (3, 4, 6), 1, 30, 40, 54, 55, mode='nearest', crop=(7, 9)),
        op_case('maxPool2d', (1, 10, 10, 2), 1, 3, 3, 60, 61),
        op_case('maxPool2d', (2, 7, 9), 1, 3, 4, 62, 63),
        op_case('maxPool2d', (54, 54, 1), 0, 4, 4, 64, 65),
        op_case('maxPool2d', (54, 18), 0, 27, 6, 66, 67),
        # Ties: PyTorch routes each window's gradient to one element (the first maximum in
        # row-major order within the window), not to every tied element.
        op_case('maxPool2d', (1, 7, 9, 2), 1, 3, 4, 68, 69, quantum=0.25),
        # NaN wins its window (value NaN, gradient to the last NaN scanned); -inf loses to anything.
        op_case('maxPool2d', (2, 10, 10), 1, 3, 3, 70, 71, nan_at=(0, 1, 11, 55, 120)),
    ]

    g = torch.Generator().manual_seed(1234)
    ties = (torch.randint(0, 4, (50,), generator=g).float() / 2).tolist()
    cont = torch.rand(20, generator=g).tolist()
    special = [0.5, float('nan'), -math.inf, 1.0, math.inf, -0.0, 0.0, float('nan'), -math.inf, 1.0, 3.0e38, -3.0e38, 1e-45, -1e-45]
    data['topk'] = [
        topk_case(ties, 0, 'k = 0'), topk_case(ties, 1, 'k = 1, many ties'), topk_case(ties, 7, 'ties'),
        topk_case(ties, 13, 'ties, k cuts a run'), topk_case(ties, 50, 'k = n'), topk_case(ties, 60, 'k > n'),
        topk_case(cont, 5, 'distinct'), topk_case(cont, 20, 'distinct, all'),
        topk_case([2.0] * 9, 4, 'all equal'), topk_case([], 3, 'empty'), topk_case([7.0], 1, 'single'),
        topk_case(special, 14, 'NaN, +-inf, +-0, extremes, subnormals'), topk_case(special, 9, 'specials, partial'),
    ]

    text = json.dumps(data, separators=(',', ':'))
    with open(OUT, 'w') as f:
        f.write(text + '\n')
    print(f'wrote {OUT}: {len(text)} bytes, torch {torch.__version__}', file=sys.stderr)


if __name__ == '__main__':
    main()
