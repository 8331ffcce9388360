"""safetensors in numpy, for the oracle tests (no pip package needed): read() and write().

Format: u64 little-endian header length N, N bytes of JSON padded with spaces to a multiple of
8, then the tensors' bytes, row-major little-endian, covering the buffer without holes.
"""
import json
import os
import struct

import numpy as np

DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
          "I8": "i1", "U8": "u1", "BOOL": "?"}
NAMES = {np.dtype(v): k for k, v in DTYPES.items()}


class FormatError(ValueError):
    pass


def read(path):
    """Returns (tensors, metadata): an insertion-ordered dict name -> numpy array (a copy) and
    the __metadata__ dict (empty when absent). Raises FormatError on a malformed file."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise FormatError("%s: shorter than 8 bytes" % path)
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        raise FormatError("%s: header length %d beyond the file" % (path, n))
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    if not isinstance(header, dict):
        raise FormatError("%s: header is not an object" % path)
    meta = header.pop("__metadata__", {}) or {}
    data = raw[8 + n:]
    spans, out = [], {}
    for name, e in header.items():
        if e["dtype"] not in DTYPES:
            raise FormatError("%s: %s: unknown dtype %s" % (path, name, e["dtype"]))
        dt = np.dtype(DTYPES[e["dtype"]])
        shape = tuple(int(s) for s in e["shape"])
        b, end = e["data_offsets"]
        if end - b != int(np.prod(shape, dtype=np.int64)) * dt.itemsize or end > len(data):
            raise FormatError("%s: %s: offsets %s do not fit shape %s" % (path, name, (b, end),
                                                                           shape))
        spans.append((b, end, name))
        out[name] = np.frombuffer(data, dtype=dt, count=(end - b) // dt.itemsize,
                                  offset=b).reshape(shape).copy()
    at = 0
    for b, end, name in sorted(spans):
        if b != at:
            raise FormatError("%s: %s: hole or overlap at byte %d" % (path, name, at))
        at = end
    if at != len(data):
        raise FormatError("%s: %d bytes after the last tensor" % (path, len(data) - at))
    return out, meta


def write(path, tensors, metadata=None):
    """Writes tensors (dict name -> array, in its order) and metadata (dict str -> str) to
    path.tmp, fsyncs and renames it to path."""
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, a in tensors.items():
        a = np.ascontiguousarray(a)
        if a.dtype.newbyteorder("<") not in NAMES and a.dtype not in NAMES:
            raise FormatError("%s: dtype %s not supported" % (name, a.dtype))
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        b = a.tobytes()
        header[name] = {"dtype": NAMES[a.dtype], "shape": list(a.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    js = json.dumps(header, separators=(",", ":")).encode("utf-8")
    js += b" " * (-len(js) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(js)))
        f.write(js)
        for b in blobs:
            f.write(b)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
