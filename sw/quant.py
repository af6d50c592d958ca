"""Torch reference quantizers, bit-identical to the NumPy golden model (docs/numerics.md).

Device-agnostic torch code (CPU, CUDA): no numpy in the hot path. Tables (dialect
values, error/index LUTs, the two-stage beneficial-range table, the two-level class
tables) come from `semdialect.golden` once per (formatbook, device) so there is one
source of truth.

Exactness strategy (numerics §1): powers of two are built from their bits, scaling by
them is exact; MX and dialect formats normalize in float64 (exact for every float32/
float16/bfloat16 input, so sticky bits of tiny elements survive); NVFP4 and INT4 repeat
the golden model's float32 operations in the same order (IEEE division and rounding
are the same on CPU and CUDA). The LUT error sums are integer-valued float64 matrix
products (exact: sums stay far below 2^53; TF32 never applies to float64).

    from semdialect.sw.quant import quantize
    q = quantize(x, "semdialect")          # x: float32/float16/bfloat16 torch tensor
    q.codes, q.scales, q.dialects, q.tensor_scale, q.dequantize()
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import torch

from semdialect import golden
from semdialect.errors import UsageError
from semdialect.golden import elements as gel
from semdialect.golden.dialects import beneficial_table
from semdialect.golden.dialects import default_selector as golden_default_selector
from semdialect.golden.formatbook import load_formatbook
from semdialect.golden.scalar_formats import (
    E4M3_MAX,
    E4M3_MIN_NORMAL,
    F4_MAX,
    FP16_MAX,
    TENSOR_SCALE_FLOOR,
    check_tensor_amax,
)

__all__ = ["quantize", "TorchQuantized", "FORMATS", "fake_quantize"]

E8M0_NAN = 0xFF
_IN_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


@dataclass
class TorchQuantized:
    """Mirror of `semdialect.golden.QuantizedTensor` with torch tensors."""

    format: str
    block_size: int
    codes: torch.Tensor  # uint8, input shape
    scales: torch.Tensor  # uint8 (E8M0/UE4M3) or int16 holding fp16 bits (int4)
    dialects: torch.Tensor | None = None  # uint8 per block
    tensor_scale: torch.Tensor | None = None  # float32 scalar (nvfp4)
    options: dict = field(default_factory=dict)
    _deq: object = field(default=None, repr=False)

    def dequantize(self) -> torch.Tensor:
        """float32 values (exact), NaN for NaN/Inf blocks."""
        return self._deq(self)

    def scales_numpy(self):
        """Scales as the golden model stores them (uint16 for int4)."""
        s = self.scales.cpu()
        if self.format == "int4":
            return s.numpy().view("uint16")
        return s.numpy()


# ------------------------------------------------------------------------ primitives


def pow2(n: torch.Tensor) -> torch.Tensor:
    """Exact float64 2^n for integer n in [-1022, 1023], built from the bits."""
    return ((n.to(torch.int64) + 1023) << 52).view(torch.float64)


def floor_log2(a: torch.Tensor) -> torch.Tensor:
    """Exact floor(log2 a) for finite a > 0 (subnormals included); 0 -> -2000."""
    _, ex = torch.frexp(a)
    return torch.where(a > 0, ex.to(torch.int32) - 1, torch.full_like(ex, -2000, dtype=torch.int32))


def _check_input(x: torch.Tensor, k: int) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in _IN_DTYPES:
        raise TypeError(f"unsupported input dtype {x.dtype}: the torch reference accepts "
                        "float32, float16 and bfloat16 tensors")
    if x.ndim == 0:
        raise ValueError("expected at least a 1-D tensor (blocks run along the last axis)")
    if not isinstance(k, int) or k <= 0:
        raise ValueError(f"block_size must be a positive integer, got {k!r}")
    if x.shape[-1] % k:
        raise ValueError(f"last axis of shape {tuple(x.shape)} is {x.shape[-1]}, not a multiple "
                         f"of the block size {k}; pad it (zeros never change a block's scale)")
    return x.float().reshape(*x.shape[:-1], x.shape[-1] // k, k)


def _signbit(x: torch.Tensor) -> torch.Tensor:
    return torch.signbit(x).to(torch.int32)


@dataclass(frozen=True)
class _Elem:
    name: str
    mbits: int
    emin: int
    max_code: int
    max_value: float
    sign_shift: int
    emax: int


def _elem(ef) -> _Elem:
    return _Elem(ef.name, ef.mbits, ef.emin, ef.max_code, float(ef.max_value), ef.sign_shift,
                 ef.emax)


def encode_minifloat(el: _Elem, y: torch.Tensor) -> torch.Tensor:
    """RNE, saturating element encode of finite (or +-Inf) y (float32/float64, no NaN):
    the golden identity code = ((E - emin) << m) + RNE(a * 2^(m - E)) (elements.py)."""
    a = y.abs()
    a = torch.where(torch.isinf(a), torch.full_like(a, el.max_value), a)
    e = torch.clamp(floor_log2(a), min=el.emin)
    q = torch.round(a.double() * pow2(el.mbits - e))  # exact scaling, RNE
    code = ((e - el.emin).to(torch.int64) << el.mbits) + q.to(torch.int64)
    code = torch.clamp(code, max=el.max_code)
    code = code | (_signbit(y).to(torch.int64) << el.sign_shift)
    return code.to(torch.uint8)


@lru_cache(maxsize=64)
def _table(name: str, device: str) -> torch.Tensor:
    vals = gel.ELEMENT_FORMATS[name].values
    return torch.as_tensor(vals, dtype=torch.float64, device=device)


# ------------------------------------------------------------------------ MX (§4)


def _mx(x, fmt, elem, block_size=None):
    k = block_size or 32
    xb = _check_input(x, k)
    bad = ~torch.isfinite(xb).all(-1)
    a = xb.abs()
    amax = torch.where(bad, torch.zeros_like(a[..., 0]), a.amax(-1))
    e = torch.clamp(floor_log2(amax) - elem.emax, -127, 127)
    y = xb.double() * pow2(-e)[..., None]
    y = torch.where(bad[..., None], torch.zeros_like(y), y)
    if elem.name == "int8":
        q = torch.clamp(torch.round(y * 64.0), -127, 127).to(torch.int8)
        codes = q.view(torch.uint8)
    else:
        codes = encode_minifloat(elem, y)
    codes = torch.where(bad[..., None], torch.zeros_like(codes), codes)
    scales = torch.where(bad, torch.full_like(e, E8M0_NAN), e + 127).to(torch.uint8)
    return TorchQuantized(fmt, k, codes.reshape(x.shape), scales, _deq=_mx_deq,
                          options={"elem": elem.name})


def _mx_deq(q: TorchQuantized) -> torch.Tensor:
    c = q.codes.reshape(*q.codes.shape[:-1], -1, q.block_size).to(torch.int64)
    if q.options["elem"] == "int8":
        vals = c.to(torch.uint8).view(torch.int8).double() / 64.0
    else:
        vals = _table(q.options["elem"], str(c.device))[c]
    s = q.scales.to(torch.int64)
    out = vals * pow2(s - 127)[..., None]
    out = torch.where((s == E8M0_NAN)[..., None], torch.full_like(out, float("nan")), out)
    return out.float().reshape(q.codes.shape)


# ------------------------------------------------------------------------ NVFP4 (§5)

_E2M1 = _elem(gel.E2M1)
_UE4M3 = _Elem("ue4m3", 3, gel.UE4M3.emin, gel.UE4M3.max_code, float(E4M3_MAX), 7, 8)


def _nvfp4(x, block_size=None, tensor_amax=None):
    k = block_size or 16
    if k != 16:
        raise ValueError(f"nvfp4 uses blocks of 16 elements, got block_size={k}")
    xb = _check_input(x, k)
    f32 = torch.float32
    bad = ~torch.isfinite(xb).all(-1)
    a = xb.abs()
    amax_b = torch.where(bad, torch.zeros((), dtype=f32, device=x.device), a.amax(-1))
    if tensor_amax is None:
        fin = torch.where(torch.isfinite(a), a, torch.zeros((), dtype=f32, device=x.device))
        tensor_amax = fin.amax() if fin.numel() else torch.zeros((), dtype=f32)
    elif not isinstance(tensor_amax, torch.Tensor):
        tensor_amax = check_tensor_amax(tensor_amax)  # the golden model's rule (§5)
    elif tensor_amax.numel() != 1 or not bool(torch.isfinite(tensor_amax).all()) or \
            bool((tensor_amax < 0).any()):
        raise UsageError(f"tensor_amax must be one finite number >= 0, got {tensor_amax}")
    tensor_amax = torch.as_tensor(tensor_amax, dtype=f32, device=x.device)
    # numerics §5 (constants shared with the golden model): s_t = max(fp32(amax / 2688),
    # 2^-120), 1 for an all-zero tensor; s_b clamped to [2^-6, 448] (torchao's E4M3_EPS)
    st = torch.where(tensor_amax > 0,
                     torch.clamp(tensor_amax / torch.tensor(float(E4M3_MAX * F4_MAX), dtype=f32,
                                                            device=x.device),
                                 min=float(TENSOR_SCALE_FLOOR)),
                     torch.ones((), dtype=f32, device=x.device))
    block_scale = amax_b / torch.tensor(float(F4_MAX), dtype=f32)
    scaled = torch.clamp(block_scale / st, float(E4M3_MIN_NORMAL), float(E4M3_MAX))
    sb_code = encode_minifloat(_UE4M3, scaled)
    sb = _table("ue4m3", str(x.device))[sb_code.to(torch.int64)].float()
    recip = (torch.ones((), dtype=f32, device=x.device) / st) / sb
    y = xb * recip[..., None]
    y = torch.clamp(torch.where(bad[..., None], torch.zeros_like(y), y), -float(F4_MAX),
                    float(F4_MAX))
    codes = encode_minifloat(_E2M1, y)
    codes = torch.where(bad[..., None], torch.zeros_like(codes), codes)
    sb_code = torch.where(bad, torch.full_like(sb_code, 0x7F), sb_code)
    return TorchQuantized("nvfp4", k, codes.reshape(x.shape), sb_code, tensor_scale=st,
                          _deq=_nvfp4_deq)


def _nvfp4_deq(q):
    c = q.codes.reshape(*q.codes.shape[:-1], -1, q.block_size).to(torch.int64)
    vals = _table("e2m1", str(c.device))[c].float()
    sb = _table("ue4m3", str(c.device))[q.scales.to(torch.int64)].float()
    total = sb * q.tensor_scale
    return (vals * total[..., None]).reshape(q.codes.shape)


# ------------------------------------------------------------------------ INT4 (§6)


def _int4(x, block_size=None):
    k = block_size or 32
    xb = _check_input(x, k)
    bad = ~torch.isfinite(xb).all(-1)
    zero = torch.zeros((), dtype=torch.float32, device=x.device)
    amax = torch.where(bad, zero, xb.abs().amax(-1))
    s16 = torch.clamp(amax / torch.tensor(7.0, dtype=torch.float32), max=float(FP16_MAX)).half()
    s = s16.float()[..., None]
    q = torch.where(s > 0, xb / torch.where(s > 0, s, torch.ones_like(s)), zero)
    q = torch.clamp(torch.round(torch.where(bad[..., None], zero, q)), -7, 7)
    codes = (_signbit(xb) << 3) | q.abs().to(torch.int32)
    codes = torch.where(bad[..., None], torch.zeros_like(codes), codes).to(torch.uint8)
    s16 = torch.where(bad, torch.full_like(s16, float("nan")), s16)
    return TorchQuantized("int4", k, codes.reshape(x.shape), s16.view(torch.int16),
                          _deq=_int4_deq)


def _int4_deq(q):
    c = q.codes.reshape(*q.codes.shape[:-1], -1, q.block_size).to(torch.int32)
    mag = (c & 7).float()
    val = torch.where((c & 8) != 0, -mag, mag)
    s = q.scales.view(torch.float16).float()
    return (val * s[..., None]).reshape(q.codes.shape)


# ------------------------------------------------------------------ dialects (§7-§9)


@dataclass(frozen=True)
class _BookTables:
    values: torch.Tensor  # (D, 8) float64
    idx: torch.Tensor  # (D, n_idx_addr) int64, exact-resolution index LUT
    idx_frac_bits: int
    emax: int
    grid: float
    num_dialects: int
    maxes: torch.Tensor | None  # (P,) float64 pair maxima (grid units), two-stage books
    ben: torch.Tensor | None  # (P, 2, n_idx_addr) bool


_BOOKS: dict = {}  # cache key -> Formatbook


def _book_key(book) -> str:
    key = f"{book.name}:{book.content_hash}"
    _BOOKS[key] = book
    return key


@lru_cache(maxsize=32)
def _book_tables(key: str, device: str) -> _BookTables:
    book = _BOOKS[key]
    luts = golden.build_luts(book)  # the index LUT does not depend on F, W
    mags = book.magnitudes
    maxes = ben = None
    if book.num_dialects % 2 == 0 and (mags[0::2, -1] == mags[1::2, -1]).all():
        maxes = torch.as_tensor(mags[0::2, -1].astype("float64"), device=device)
        ben = torch.as_tensor(beneficial_table(book), device=device)
    return _BookTables(
        torch.as_tensor(book.values, dtype=torch.float64, device=device),
        torch.as_tensor(luts.idx.astype("int64"), device=device), luts.idx_frac_bits,
        book.emax, book.grid, book.num_dialects, maxes, ben)


@lru_cache(maxsize=32)
def _err_table(key: str, frac_bits: int, err_bits: int, device: str) -> torch.Tensor:
    luts = golden.build_luts(_BOOKS[key], frac_bits, err_bits)
    return torch.as_tensor(luts.err.T.astype("float64"), device=device)  # (n_addr, D)


def normalized_code(v: torch.Tensor, frac_bits: int) -> torch.Tensor:
    """floor(v * 2^F) << 1 | sticky, for exact float64 v (numerics §8.2)."""
    s = v * float(2**frac_bits)
    t = torch.floor(s)
    return (t.to(torch.int64) << 1) | (s != t).to(torch.int64)


CHUNK_BLOCKS = 1 << 15


def lut_block_errors(err_t: torch.Tensor, v: torch.Tensor, frac_bits: int) -> torch.Tensor:
    """sum_i ERR[d, a_i] per block (nb, D), as float64 holding exact integers: per-block
    address histograms times the error matrix."""
    nb, k = v.shape
    n_addr, d = err_t.shape
    out = torch.empty((nb, d), dtype=torch.float64, device=v.device)
    for s in range(0, nb, CHUNK_BLOCKS):
        vc = v[s : s + CHUNK_BLOCKS]
        m = vc.shape[0]
        addr = normalized_code(vc, frac_bits)
        flat = (addr + torch.arange(m, device=v.device)[:, None] * n_addr).reshape(-1)
        hist = torch.zeros(m * n_addr, dtype=torch.float64, device=v.device)
        hist.scatter_add_(0, flat, torch.ones_like(flat, dtype=torch.float64))
        out[s : s + m] = hist.reshape(m, n_addr) @ err_t
    return out


def _allowed_mask(allowed, nb: int, nd: int, device):
    if allowed is None:
        return None
    m = torch.as_tensor(allowed, device=device)
    if m.dtype != torch.bool:
        ids = m.to(torch.int64).reshape(-1)
        if ids.numel() == 0 or int(ids.min()) < 0 or int(ids.max()) >= nd:
            raise ValueError(f"allowed dialect ids must be in 0..{nd - 1}, got {allowed}")
        mask = torch.zeros(nd, dtype=torch.bool, device=device)
        mask[ids] = True
        return mask
    if m.shape[-1] != nd or m.ndim > 2 or (m.ndim == 2 and m.shape[0] != nb):
        raise ValueError(f"allowed mask must have shape ({nd},) or ({nb}, {nd}), "
                         f"got {tuple(m.shape)}")
    if not bool(m.any(-1).all()):
        raise ValueError("allowed mask leaves a block with no dialect to choose from")
    return m


def _two_stage(t: _BookTables, v: torch.Tensor, bad: torch.Tensor) -> torch.Tensor:
    if t.maxes is None:
        raise ValueError("two-stage selection needs dialect pairs (2j, 2j+1) sharing a maximum")
    vmax = v.amax(-1)
    m = torch.round(vmax / t.grid)
    m = torch.clamp(m, float(t.maxes.min()), float(t.maxes.max()))
    sorted_maxes, order = torch.sort(t.maxes, stable=True)
    pos = torch.searchsorted(sorted_maxes, m.contiguous(), side="left")
    pair = order[torch.clamp(pos, 0, len(order) - 1)]
    aq = normalized_code(v, t.idx_frac_bits)
    ben = t.ben[pair]  # (nb, 2, n_addr)
    cnt_a = torch.gather(ben[:, 0].to(torch.int64), 1, aq).sum(-1)
    cnt_b = torch.gather(ben[:, 1].to(torch.int64), 1, aq).sum(-1)
    d = 2 * pair + (cnt_b > cnt_a).to(torch.int64)
    return torch.where(bad, torch.zeros_like(d), d)


@lru_cache(maxsize=32)
def _class_tables(key: str, frac_bits: int, err_bits: int, device: str):
    """(class_ids (N, K) int64, class_err (N, K, n_addr) int64) from the golden
    TwoLevelTables (numerics §15)."""
    t = golden.build_two_level(_BOOKS[key], frac_bits, err_bits)
    return (torch.as_tensor(t.class_ids.copy(), device=device),
            torch.as_tensor(t.class_err.astype("int64"), device=device))


def _two_level(book, key: str, v: torch.Tensor, mask, frac_bits: int, err_bits: int,
               dev: str) -> torch.Tensor:
    """numerics §15: class from the block max, effective class under the mask, K-way
    argmin of the class's error-ROM sums (ties to the lowest slot = lowest id). NaN/Inf
    blocks arrive zeroed and select like all-zero blocks."""
    ids, cerr = _class_tables(key, frac_bits, err_bits, dev)
    n_cls = ids.shape[0]
    b = book.class_bits
    vmax = v.amax(-1) if v.shape[-1] else torch.zeros(v.shape[0], dtype=v.dtype)
    t = torch.floor(vmax * float(2.0 ** (b - book.emax))).to(torch.int64)
    cls = torch.clamp(t - (1 << b), 0, n_cls - 1)
    nb = v.shape[0]
    if mask is not None:
        m = mask.expand(nb, book.num_dialects)
        nonempty = m[:, ids].any(-1)  # (nb, N)
        c = torch.arange(n_cls, device=v.device)
        up = nonempty & (c[None, :] >= cls[:, None])
        down = nonempty & (c[None, :] < cls[:, None])
        first_up = torch.argmax(up.to(torch.int64), -1)  # first maximum: lowest class
        last_down = n_cls - 1 - torch.argmax(down.flip(-1).to(torch.int64), -1)
        cls = torch.where(up.any(-1), first_up, last_down)
    addr = normalized_code(v, frac_bits)  # (nb, k)
    err = cerr[cls[:, None], :, addr].sum(1)  # (nb, K): exact int64 adder-tree sums
    cand = ids[cls]  # (nb, K)
    if mask is not None:
        allowed = torch.gather(m, 1, cand)
        err = torch.where(allowed, err, torch.full_like(err, torch.iinfo(torch.int64).max))
    slot = torch.argmin(err, -1)
    return torch.gather(cand, 1, slot[:, None])[:, 0]


def normalize_blocks(t: _BookTables, xb: torch.Tensor):
    """Shared exponent e, normalized magnitudes v (float64, exact) and NaN/Inf-block flags
    of blocks xb (nb, k) (numerics §7; golden.dialects.normalize_blocks)."""
    bad = ~torch.isfinite(xb).all(-1)
    a = xb.abs()
    amax = torch.where(bad, torch.zeros_like(a[:, 0]), a.amax(-1))
    e = torch.clamp(floor_log2(amax) - t.emax, -127, 127)
    v = a.double() * pow2(-e)[:, None]
    v = torch.where(bad[:, None], torch.zeros_like(v), v)
    return e, v, bad


def _dialect(x, fmt, default_book, default_selector, block_size=None, formatbook=None,
             selector=None, frac_bits=golden.DEFAULT_FRAC_BITS,
             err_bits=golden.DEFAULT_ERR_BITS, allowed=None):
    k = block_size or 32
    book = load_formatbook(formatbook or default_book)
    selector = selector or default_selector or golden_default_selector(book)
    if selector not in ("lut", "two-stage", "two-level"):
        raise ValueError(f"selector {selector!r} is not in the torch reference: use 'lut', "
                         "'two-stage' or 'two-level' ('mse' is golden-model only)")
    xb = _check_input(x, k)
    lead = xb.shape[:-1]
    xb = xb.reshape(-1, k)
    dev = str(x.device)
    key = _book_key(book)
    t = _book_tables(key, dev)
    e, v, bad = normalize_blocks(t, xb)
    mask = _allowed_mask(allowed, xb.shape[0], t.num_dialects, x.device)
    if selector == "lut":
        golden.build_luts(book, frac_bits, err_bits)  # validates frac_bits / err_bits
        err = lut_block_errors(_err_table(key, int(frac_bits), int(err_bits), dev), v,
                               int(frac_bits))
        if mask is not None:
            err = torch.where(mask, err, torch.full_like(err, float("inf")))
        d = torch.argmin(err, -1)  # first minimum: ties to the lowest id (§8.4)
    elif selector == "two-level":
        golden.build_two_level(book, frac_bits, err_bits)  # validates book, F, W
        d = _two_level(book, key, v, mask, int(frac_bits), int(err_bits), dev)
    else:
        if mask is not None:
            raise ValueError("the two-stage selector does not take an allowed mask")
        d = _two_stage(t, v, bad)
    if mask is not None and selector != "two-level":  # NaN/Inf: lowest allowed id (§8.7)
        first = torch.argmax(mask.expand(xb.shape[0], t.num_dialects).to(torch.int64), -1)
        d = torch.where(bad, first, d)
    aq = normalized_code(v, t.idx_frac_bits)
    idx = t.idx[d[:, None], aq]
    codes = ((_signbit(xb) << 3) | idx.to(torch.int32)).to(torch.uint8)
    codes = torch.where(bad[:, None], torch.zeros_like(codes), codes)
    scales = torch.where(bad, torch.full_like(e, E8M0_NAN), e + 127).to(torch.uint8)
    opts = {"formatbook": book.name, "selector": selector, "_key": key}
    if selector in ("lut", "two-level"):
        opts.update(frac_bits=int(frac_bits), err_bits=int(err_bits))
    return TorchQuantized(fmt, k, codes.reshape(x.shape), scales.reshape(lead),
                          dialects=d.to(torch.uint8).reshape(lead), options=opts,
                          _deq=_dialect_deq)


def _dialect_deq(q):
    t = _book_tables(q.options["_key"], str(q.codes.device))
    c = q.codes.reshape(*q.codes.shape[:-1], -1, q.block_size).to(torch.int64)
    d = q.dialects.to(torch.int64)[..., None]
    mag = t.values[d, c & 7]
    val = torch.where((c & 8) != 0, -mag, mag)
    s = q.scales.to(torch.int64)
    out = val * pow2(s - 127)[..., None]
    out = torch.where((s == E8M0_NAN)[..., None], torch.full_like(out, float("nan")), out)
    return out.float().reshape(q.codes.shape)


# ------------------------------------------------------------------------ dispatcher

_MX = {
    "mxfp4": _elem(gel.E2M1), "mxfp6_e2m3": _elem(gel.E2M3), "mxfp6_e3m2": _elem(gel.E3M2),
    "mxfp8_e4m3": _elem(gel.E4M3), "mxfp8_e5m2": _elem(gel.E5M2),
}
_MXINT8 = _Elem("int8", 0, 0, 0, 127 / 64, 7, 0)

FORMATS = ("mxfp4", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp8_e4m3", "mxfp8_e5m2", "mxint8",
           "nvfp4", "int4", "dialectfp4", "semdialect")


def quantize(x: torch.Tensor, fmt: str, **options) -> TorchQuantized:
    """Quantize a torch tensor in blocks along its last axis; same formats, options and
    results as `semdialect.golden.quantize` (selector 'mse' excepted)."""
    if fmt in _MX:
        return _call(_mx, fmt, x, options, fmt=fmt, elem=_MX[fmt])
    if fmt == "mxint8":
        return _call(_mx, fmt, x, options, fmt=fmt, elem=_MXINT8)
    if fmt == "nvfp4":
        return _call(_nvfp4, fmt, x, options)
    if fmt == "int4":
        return _call(_int4, fmt, x, options)
    if fmt == "dialectfp4":
        return _call(_dialect, fmt, x, options, fmt=fmt, default_book="dialectfp4",
                     default_selector="two-stage")
    if fmt == "semdialect":
        return _call(_dialect, fmt, x, options, fmt=fmt, default_book="semdialect-32c8x8",
                     default_selector=None)  # by book: two-level on class books (§15.7)
    raise ValueError(f"unknown format {fmt!r}; known formats: {', '.join(FORMATS)}")


def _call(fn, name, x, options, **fixed):
    import inspect

    params = set(inspect.signature(fn).parameters) - {"x"} - set(fixed)
    params -= {"default_book", "default_selector"}
    unknown = [k for k in options if k not in params]
    if unknown:
        raise TypeError(f"format {name!r} does not take option(s) {', '.join(unknown)}; "
                        f"it takes: {', '.join(sorted(params))}")
    return fn(x, **fixed, **options)


def fake_quantize(x: torch.Tensor, fmt: str, **options) -> torch.Tensor:
    """dequantize(quantize(x)) in x's dtype; a last axis that is not a multiple of the
    block size is zero-padded for quantization and cut back afterwards."""
    k = options.get("block_size") or (16 if fmt == "nvfp4" else 32)
    n = x.shape[-1]
    pad = -n % k
    xin = torch.nn.functional.pad(x, (0, pad)) if pad else x
    y = quantize(xin, fmt, **options).dequantize()
    if pad:
        y = y[..., :n]
    return y.to(x.dtype)
