"""Bad input raises a clear error (numerics §1, §7, §8): dtypes, shapes, block sizes,
formats, options, allowed masks and every formatbook validation rule."""

from __future__ import annotations

import json

import numpy as np
import pytest

from semdialect import golden as G
from semdialect.golden.formatbook import FormatbookError, load_formatbook

X = np.zeros((2, 64), np.float32)
GOOD = {
    "name": "t",
    "version": 1,
    "grid": 0.5,
    "scale": {"type": "e8m0", "emax": 2},
    "dialects": [[0, 1, 2, 3, 4, 6, 8, 12], [0, 1, 2, 3, 4, 5, 6, 8]],
}


@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.int8, np.complex64, object, bool])
@pytest.mark.parametrize("fmt", ["mxfp4", "nvfp4", "semdialect"])
def test_wrong_dtype(dtype, fmt):
    with pytest.raises(TypeError, match=np.dtype(dtype).name):
        G.quantize(np.zeros((2, 32), dtype=dtype), fmt)


def test_not_an_ndarray_and_zero_dim():
    with pytest.raises(TypeError, match="numpy.ndarray"):
        G.quantize([0.0] * 32, "mxfp4")
    with pytest.raises(ValueError, match="1-D"):
        G.quantize(np.array(1.0, np.float32), "mxfp4")


@pytest.mark.parametrize("fmt", G.FORMATS)
def test_last_axis_not_multiple_of_block(fmt):
    x = np.zeros((3, 40), np.float32)
    with pytest.raises(ValueError, match=r"\(3, 40\).*(32|16)|(32|16).*\(3, 40\)"):
        G.quantize(x, fmt)


@pytest.mark.parametrize("k", [0, -32, 1.5, "32", None.__class__])
def test_bad_block_size(k):
    with pytest.raises(ValueError, match="block_size"):
        G.quantize(X, "mxfp4", block_size=k)


def test_nvfp4_block_size_fixed():
    with pytest.raises(ValueError, match="16"):
        G.quantize(X, "nvfp4", block_size=32)


@pytest.mark.parametrize("fmt", ["mxfp5", "", "MXFP4", None, 3])
def test_unknown_format(fmt):
    with pytest.raises(ValueError, match="unknown format"):
        G.quantize(X, fmt)


@pytest.mark.parametrize("fmt,opt", [("mxfp4", "tensor_amax"), ("nvfp4", "selector"),
                                     ("int4", "formatbook"), ("semdialect", "blocksize")])
def test_unknown_option(fmt, opt):
    with pytest.raises(TypeError, match=opt):
        G.quantize(X, fmt, **{opt: 1})


def test_bad_dialect_options():
    with pytest.raises(ValueError, match="selector"):
        G.quantize(X, "semdialect", selector="best")
    for f in (0, 9, 2.5):
        with pytest.raises(ValueError, match="frac_bits"):
            G.quantize(X, "semdialect", frac_bits=f)
    for w in (0, 25):
        with pytest.raises(ValueError, match="err_bits"):
            G.quantize(X, "semdialect", err_bits=w)


@pytest.mark.parametrize("allowed", [[], [32], [-1], np.zeros(32, bool),
                                     np.zeros((4, 32), bool), np.ones(31, bool),
                                     np.ones((3, 32), bool)])
def test_bad_allowed(allowed):
    with pytest.raises(ValueError, match="allowed"):
        G.quantize(X, "semdialect", allowed=allowed)


def test_allowed_mask_with_one_empty_row():
    m = np.ones((4, 32), bool)
    m[2] = False
    with pytest.raises(ValueError, match="no dialect"):
        G.quantize(X, "semdialect", allowed=m)


def test_two_stage_rejects_mask_and_unpaired_books():
    with pytest.raises(ValueError, match="two-stage"):
        G.quantize(X, "dialectfp4", allowed=[0, 1])
    with pytest.raises(ValueError, match="pairs"):
        G.quantize(X, "dialectfp4", formatbook="semdialect-32", selector="two-stage")


def _write(tmp_path, obj, raw=None):
    p = tmp_path / "book.json"
    p.write_text(raw if raw is not None else json.dumps(obj))
    return p


def _with(**kw):
    obj = json.loads(json.dumps(GOOD))
    for k, v in kw.items():
        if v is _DROP:
            del obj[k]
        else:
            obj[k] = v
    return obj


_DROP = object()

BAD_BOOKS = {
    "not an object": ([1, 2], "top level"),
    "missing version": (_with(version=_DROP), "version"),
    "missing name": (_with(name=_DROP), "name"),
    "missing grid": (_with(grid=_DROP), "grid"),
    "missing scale": (_with(scale=_DROP), "scale"),
    "missing dialects": (_with(dialects=_DROP), "dialects"),
    "version type": (_with(version="1"), "version"),
    "version value": (_with(version=2), "version"),
    "name type": (_with(name=3), "name"),
    "grid type": (_with(grid="0.5"), "grid"),
    "grid bool": (_with(grid=True), "grid"),
    "version bool": (_with(version=True), "version"),
    "emax bool": (_with(scale={"type": "e8m0", "emax": True}), "emax"),
    "grid not pow2": (_with(grid=0.3), "power of two"),
    "grid negative": (_with(grid=-0.5), "grid"),
    "grid zero": (_with(grid=0), "grid"),
    "grid above 1": (_with(grid=2), "grid"),
    "scale type": (_with(scale={"type": "ue4m3", "emax": 2}), "scale.type"),
    "scale not dict": (_with(scale="e8m0"), "scale"),
    "emax missing": (_with(scale={"type": "e8m0"}), "emax"),
    "emax range": (_with(scale={"type": "e8m0", "emax": 9}), "emax"),
    "emax type": (_with(scale={"type": "e8m0", "emax": 2.0}), "emax"),
    "dialects type": (_with(dialects={"a": 1}), "dialects"),
    "dialect not list": (_with(dialects=[5]), "dialect 0"),
    "dialect floats": (_with(dialects=[[0, 1, 2, 3, 4, 6, 8, 12.0]]), "dialect 0"),
    "dialect bools": (_with(dialects=[[False, True, 2, 3, 4, 6, 8, 12]]), "dialect 0"),
    "no dialects": (_with(dialects=[]), "1..256"),
    "too many dialects": (_with(dialects=[[0, 1, 2, 3, 4, 5, 6, 7 + i] for i in range(257)]),
                          "1..256"),
    "7 levels": (_with(dialects=[[0, 1, 2, 3, 4, 6, 8]]), "magnitudes"),
    "9 levels": (_with(dialects=[[0, 1, 2, 3, 4, 6, 8, 10, 12]]), "magnitudes"),
    "no zero": (_with(dialects=[[1, 2, 3, 4, 5, 6, 8, 12]]), "start at magnitude 0"),
    "not increasing": (_with(dialects=[[0, 1, 2, 2, 4, 6, 8, 12]]), "strictly increase"),
    "decreasing": (_with(dialects=[[0, 3, 2, 1, 4, 6, 8, 12]]), "strictly increase"),
    "max too big": (_with(dialects=[[0, 1, 2, 3, 4, 6, 8, 16]]), "2\\^\\(emax\\+1\\)"),
    "max too big emax": (_with(scale={"type": "e8m0", "emax": 1},
                               dialects=[[0, 1, 2, 3, 4, 5, 6, 8]]), "2\\^\\(emax\\+1\\)"),
    "duplicate": (_with(dialects=[[0, 1, 2, 3, 4, 6, 8, 12]] * 2), "duplicate"),
}


@pytest.mark.parametrize("case", list(BAD_BOOKS))
def test_malformed_formatbook(tmp_path, case):
    obj, msg = BAD_BOOKS[case]
    p = _write(tmp_path, obj)
    with pytest.raises(FormatbookError, match=msg):
        load_formatbook(p)
    with pytest.raises(ValueError, match=msg):  # FormatbookError is a ValueError
        G.quantize(X, "semdialect", formatbook=str(p))


def test_good_formatbook_loads_and_quantizes(tmp_path):
    """The base of every malformed case is itself valid (so each failure is its rule)."""
    p = _write(tmp_path, GOOD)
    book = load_formatbook(p)
    assert book.num_dialects == 2
    qt = G.quantize(X, "semdialect", formatbook=str(p))
    assert qt.dialects.max() <= 1


def test_invalid_json_and_missing_file(tmp_path):
    with pytest.raises(FormatbookError, match="not valid JSON"):
        load_formatbook(_write(tmp_path, None, raw="{not json"))
    with pytest.raises(FormatbookError, match="unknown formatbook"):
        load_formatbook(tmp_path / "nope.json")
    with pytest.raises(FormatbookError, match="unknown formatbook"):
        G.quantize(X, "semdialect", formatbook="semdialect-33")


def test_pack_errors():
    with pytest.raises(ValueError, match="whole bytes"):
        G.pack_codes(np.zeros(3, np.uint8), 4)
    with pytest.raises(ValueError, match="fit"):
        G.pack_codes(np.full(2, 16, np.uint8), 4)


def test_decode_out_of_range():
    with pytest.raises(ValueError, match="out of range"):
        G.E2M1.decode(np.array([16]))
