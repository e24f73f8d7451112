"""Lets Debian's torch 1.13 import its distributed checkpoint modules under Python 3.11, for
the tests that run it (make_dcp_cases.py, tests/dcp/dcp_metadata_test.cc). Import this before
torch.

torch 1.13's _shard/sharded_tensor/metadata.py gives a dataclass field the default
TensorProperties(), which Python 3.11 refuses ("mutable default"): the class is made hashable
first, as Python <= 3.10 did not care. The pickled bytes do not depend on it.
"""
import dataclasses

_orig = dataclasses._get_field


def _get_field(cls, a_name, a_type, *rest):
    try:
        return _orig(cls, a_name, a_type, *rest)
    except ValueError as e:
        if "mutable default" not in str(e):
            raise
        d = cls.__dict__[a_name]
        d = d.default if isinstance(d, dataclasses.Field) else d
        type(d).__hash__ = object.__hash__
        return _orig(cls, a_name, a_type, *rest)


dataclasses._get_field = _get_field
