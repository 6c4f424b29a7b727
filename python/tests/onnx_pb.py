"""A minimal reader of ONNX ``TensorProto`` files (``input_N.pb`` / ``output_N.pb``) into numpy arrays.

Independent of carve (so the tests compare carve against data it did not decode) and of the ``onnx``
package (so the test environment needs only numpy and pytest). It reads the fields the shared test data
uses: dims, data_type, raw_data and the typed repeated fields (packed or not).
"""

import numpy as np

# ONNX TensorProto.DataType → numpy dtype.
DTYPES = {
    1: np.float32, 2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16, 6: np.int32, 7: np.int64,
    9: np.bool_, 10: np.float16, 11: np.float64, 12: np.uint32, 13: np.uint64,
}


def _varint(buf, i):
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def _fields(buf):
    """Yields (field number, wire type, value) of a protobuf message."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            v, i = _varint(buf, i)
        elif wire == 1:
            v, i = buf[i:i + 8], i + 8
        elif wire == 2:
            n, i = _varint(buf, i)
            v, i = buf[i:i + n], i + n
        elif wire == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield field, wire, v


def _signed(v):
    return v - (1 << 64) if v >= 1 << 63 else v


def read_tensor(path):
    """The tensor in the ``TensorProto`` file at ``path`` as a numpy array."""
    with open(path, "rb") as f:
        buf = f.read()
    dims, dtype, raw = [], None, None
    floats, doubles, ints = [], [], []
    for field, wire, v in _fields(buf):
        if field == 1:  # dims (int64, packed or not)
            if wire == 2:
                j = 0
                while j < len(v):
                    d, j = _varint(v, j)
                    dims.append(_signed(d))
            else:
                dims.append(_signed(v))
        elif field == 2:
            dtype = v
        elif field == 9:
            raw = bytes(v)
        elif field == 4:  # float_data
            floats.extend(np.frombuffer(bytes(v), "<f4") if wire == 2 else np.frombuffer(bytes(v), "<f4"))
        elif field == 10:  # double_data
            doubles.extend(np.frombuffer(bytes(v), "<f8"))
        elif field in (5, 7, 11):  # int32_data, int64_data, uint64_data (varints)
            if wire == 2:
                j = 0
                while j < len(v):
                    d, j = _varint(v, j)
                    ints.append(_signed(d) if field != 11 else d)
            else:
                ints.append(_signed(v) if field != 11 else v)
    if dtype not in DTYPES:
        raise ValueError(f"{path}: unsupported data type {dtype}")
    np_dtype = np.dtype(DTYPES[dtype])
    if raw is not None:
        arr = np.frombuffer(raw, np_dtype.newbyteorder("<")).astype(np_dtype)
    elif dtype == 1:
        arr = np.array(floats, np.float32)
    elif dtype == 11:
        arr = np.array(doubles, np.float64)
    elif dtype == 10:
        arr = np.array(ints, np.uint16).view(np.float16)
    else:
        arr = np.array(ints).astype(np_dtype)
    return arr.reshape(dims)
