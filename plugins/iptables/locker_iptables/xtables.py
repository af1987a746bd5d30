"""The kernel's x_tables structures this backend reads rules from, as named
ctypes structures (``linux/netfilter/x_tables.h``, ``xt_tcpudp.h``,
``xt_comment.h``, ``xt_conntrack.h``, ``nf_nat.h``).

Every match and the target of an ``ipt_entry`` start with the same header
(``struct xt_entry_match`` / ``xt_entry_target``, user view: size, name,
revision) followed by the extension's own data. ``from_bytes`` reads one
structure at an offset of a rule's bytes.
"""

from __future__ import annotations

import ctypes
from typing import TypeVar

XT_EXTENSION_MAXNAMELEN = 29
XT_INV_PROTO = 0x40                         # ipt_ip / ip6t_ip6 invflags: ! -p
NF_INET_ADDR = ctypes.c_ubyte * 16          # union nf_inet_addr (an IPv4 address: first 4)
BE16 = ctypes.c_uint16.__ctype_be__         # __be16


class EntryHeader(ctypes.Structure):
    """struct xt_entry_match / xt_entry_target, ``u.user``."""

    _fields_ = [("size", ctypes.c_uint16),
                ("name", ctypes.c_char * XT_EXTENSION_MAXNAMELEN),
                ("revision", ctypes.c_uint8)]


class Tcp(ctypes.Structure):
    """struct xt_tcp (match ``tcp``, revision 0)."""

    _fields_ = [("spts", ctypes.c_uint16 * 2), ("dpts", ctypes.c_uint16 * 2),
                ("option", ctypes.c_uint8), ("flg_mask", ctypes.c_uint8),
                ("flg_cmp", ctypes.c_uint8), ("invflags", ctypes.c_uint8)]


class Udp(ctypes.Structure):
    """struct xt_udp (match ``udp``, revision 0)."""

    _fields_ = [("spts", ctypes.c_uint16 * 2), ("dpts", ctypes.c_uint16 * 2),
                ("invflags", ctypes.c_uint8)]


XT_MAX_COMMENT_LEN = 256


class CommentInfo(ctypes.Structure):
    """struct xt_comment_info (match ``comment``, revision 0)."""

    _fields_ = [("comment", ctypes.c_char * XT_MAX_COMMENT_LEN)]


class ConntrackMtinfo3(ctypes.Structure):
    """struct xt_conntrack_mtinfo3 (match ``conntrack``, revision 3; its
    ports are in host order)."""

    _fields_ = [("origsrc_addr", NF_INET_ADDR), ("origsrc_mask", NF_INET_ADDR),
                ("origdst_addr", NF_INET_ADDR), ("origdst_mask", NF_INET_ADDR),
                ("replsrc_addr", NF_INET_ADDR), ("replsrc_mask", NF_INET_ADDR),
                ("repldst_addr", NF_INET_ADDR), ("repldst_mask", NF_INET_ADDR),
                ("expires_min", ctypes.c_uint32), ("expires_max", ctypes.c_uint32),
                ("l4proto", ctypes.c_uint16),
                ("origsrc_port", ctypes.c_uint16), ("origdst_port", ctypes.c_uint16),
                ("replsrc_port", ctypes.c_uint16), ("repldst_port", ctypes.c_uint16),
                ("match_flags", ctypes.c_uint16), ("invert_flags", ctypes.c_uint16),
                ("state_mask", ctypes.c_uint16), ("status_mask", ctypes.c_uint16),
                ("origsrc_port_high", ctypes.c_uint16), ("origdst_port_high", ctypes.c_uint16),
                ("replsrc_port_high", ctypes.c_uint16), ("repldst_port_high", ctypes.c_uint16)]


# xt_conntrack.h: match_flags / invert_flags bits.
XT_CONNTRACK_STATE = 1 << 0
XT_CONNTRACK_ORIGDST = 1 << 3
XT_CONNTRACK_ORIGDST_PORT = 1 << 9
# state_mask bits: XT_CONNTRACK_STATE_BIT(ctinfo) = 1 << (ctinfo + 1), and
# the SNAT/DNAT pseudo-states after IP_CT_NUMBER (5).
CT_STATE_ESTABLISHED = 1 << 1
CT_STATE_RELATED = 1 << 2
CT_STATE_NEW = 1 << 3
CT_STATE_DNAT = 1 << 7


class NatRange(ctypes.Structure):
    """struct nf_nat_range (target ``DNAT`` revision 1; revision 2's
    nf_nat_range2 starts the same)."""

    _fields_ = [("flags", ctypes.c_uint), ("min_addr", NF_INET_ADDR),
                ("max_addr", NF_INET_ADDR), ("min_proto", BE16), ("max_proto", BE16)]


class NatRange2(ctypes.Structure):
    """struct nf_nat_range2 (target ``DNAT`` revision 2): with the base of
    a shifted port map (``--to-destination IP:9000-9010/8000``)."""

    _fields_ = NatRange._fields_ + [("base_proto", BE16)]


NF_NAT_RANGE_MAP_IPS = 1 << 0
NF_NAT_RANGE_PROTO_SPECIFIED = 1 << 1
NF_NAT_RANGE_PROTO_OFFSET = 1 << 5


def align(size: int) -> int:
    """XT_ALIGN: the size rounded up to 8 (the alignment of u_int64_t)."""
    return (size + 7) & ~7

Structure = TypeVar("Structure", bound=ctypes.Structure)


def from_bytes(kind: type[Structure], raw: bytes, offset: int) -> Structure:
    """The structure ``kind`` at ``offset`` of a rule's bytes (a copy)."""
    return kind.from_buffer_copy(raw, offset)


def header_at(raw: bytes, offset: int) -> tuple[bytes, int, int]:
    """(name, revision, size) of the match or target header at ``offset``."""
    header = from_bytes(EntryHeader, raw, offset)
    return header.name, header.revision, header.size
