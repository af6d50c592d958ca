"""The DUT interface as the RTL manifest describes it: port names, widths, payload field
offsets, latency. Everything the testbench drives or samples comes from here."""

from __future__ import annotations

from dataclasses import dataclass

from .configs import SimConfig
from .payload import Field, PayloadLayout

__all__ = ["DutInterface", "interface_from_manifest"]


@dataclass
class DutInterface:
    toplevel: str
    clk: str
    rst: str
    i_valid: str
    i_ready: str
    i_payload: str
    o_valid: str
    o_ready: str
    o_payload: str
    in_layout: PayloadLayout
    out_layout: PayloadLayout
    latency: int | None
    num_dialects: int | None
    #: the most blocks the unit holds (accepted, not yet output); default: the latency
    capacity: int | None = None


def _ports(manifest: dict) -> dict[str, dict]:
    ports = manifest.get("ports")
    if isinstance(ports, list):
        return {p["name"]: p for p in ports}
    if isinstance(ports, dict):
        return {k: ({"width": v} if isinstance(v, int) else v) for k, v in ports.items()}
    raise ValueError("RTL manifest has no 'ports'")


def _find(ports: dict[str, dict], *cands: str) -> str:
    for c in cands:
        if c in ports:
            return c
    raise ValueError(f"RTL manifest: none of the ports {cands} exists (ports: {list(ports)})")


def _fields_from(port: dict, elem: dict[str, int]) -> list[Field] | None:
    """Payload fields listed by the manifest: {name: {offset, width}} or a list."""
    raw = port.get("fields") or port.get("layout")
    if raw is None:
        return None
    if isinstance(raw, dict):
        raw = [dict(v, name=k) for k, v in raw.items()]
    out = []
    for f in raw:
        name = f["name"]
        width = int(f["width"])
        count = int(f.get("count", 0) or 0)
        ew = elem.get(name)
        if not count and ew and width % ew == 0 and width != ew:
            count, width = width // ew, ew
        out.append(Field(name, int(f["offset"]), width, count or 1))
    return out


def interface_from_manifest(cfg: SimConfig, manifest: dict) -> DutInterface:
    ports = _ports(manifest)
    params = manifest.get("parameters", {})
    b = int(params.get("block_size", cfg.block_size))
    if b != cfg.block_size:
        raise ValueError(f"{cfg.name}: manifest block size {b} != configuration's "
                         f"{cfg.block_size}")
    d = params.get("num_dialects")
    names = {
        "clk": _find(ports, "clk"),
        "rst": _find(ports, "rst", "reset"),
        "i_valid": _find(ports, "i__valid", "i_valid"),
        "i_ready": _find(ports, "i__ready", "i_ready"),
        "i_payload": _find(ports, "i__payload", "i_payload"),
        "o_valid": _find(ports, "o__valid", "o_valid"),
        "o_ready": _find(ports, "o__ready", "o_ready"),
        "o_payload": _find(ports, "o__payload", "o_payload"),
    }
    wi = int(ports[names["i_payload"]]["width"])
    wo = int(ports[names["o_payload"]]["width"])
    in_fields = _fields_from(ports[names["i_payload"]], {"data": 16, "mask": 1})
    out_fields = _fields_from(ports[names["o_payload"]], {"codes": 4})
    if in_fields is None:  # the unit's StructLayout order (rtl/units.py), checked by width
        in_fields = [Field("data", 0, 16, b)]
        if cfg.has_mask:
            in_fields.append(Field("mask", 16 * b, 1, int(d)))
        in_fields.append(Field("last", wi - 1, 1))
    if out_fields is None:
        out_fields = [Field("codes", 0, 4, b), Field("scale", 4 * b, 8)]
        if cfg.has_dialect:
            out_fields.append(Field("dialect", 4 * b + 8, wo - 1 - (4 * b + 8)))
        out_fields.append(Field("last", wo - 1, 1))
    for f in in_fields:  # masks are driven per dialect
        if f.name == "mask" and f.count == 1 and f.width > 1:
            in_fields[in_fields.index(f)] = Field("mask", f.offset, 1, f.width)
    lin, lout = PayloadLayout(wi, in_fields), PayloadLayout(wo, out_fields)
    for lay, w, side in ((lin, wi, "input"), (lout, wo, "output")):
        used = sum(f.bits for f in lay.fields.values())
        if used != w:
            raise ValueError(f"{cfg.name}: {side} payload fields cover {used} of {w} bits")
    if lin["data"].count != b or lout["codes"].count != b:
        raise ValueError(f"{cfg.name}: payload lanes do not match block size {b}")
    lat = manifest.get("latency", params.get("latency", params.get("pipeline")))
    if isinstance(lat, dict):
        lat = lat.get("cycles")
    return DutInterface(
        toplevel=manifest["toplevel"], **names, in_layout=lin, out_layout=lout,
        latency=None if lat is None else int(lat),
        capacity=(int(manifest["capacity_blocks"]) if "capacity_blocks" in manifest
                  else None if lat is None else int(lat)),
        num_dialects=None if d is None else int(d),
    )
