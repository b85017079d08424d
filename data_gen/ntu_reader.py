"""Fast, strict reader for NTU RGB+D ``.skeleton`` text files, and body selection.

Format (shared/data/README.md): line 1 = number of frames; per frame a line
with the number of bodies; per body one line of 10 fields (bodyID ...
trackingState), one line with the joint count (25), then one line of 12 fields
per joint (x y z depthX depthY colorX colorY orientationW..Z trackingState).
CRLF and LF files are both accepted.

Shapes:
    :func:`read_skeleton` -> :class:`SkeletonSequence` with ``joints`` of shape
    ``(S, T, V, 3)``: S body *slots* (the m-th body listed in a frame goes to slot
    m, the SCD-Net / 2s-AGCN convention, at most ``max_bodies`` = 4), T = the
    header's frame count (frames without a body stay zero).
    :func:`select_bodies` ``(S, T, V, 3) -> (num, T, V, 3)``, the ``num`` slots with
    the largest energy (sum over x, y, z of the std over the non-zero frames);
    :func:`body_order` gives just their indices ``(min(S, num),)``.

Speed (issue 8): the whole file is handled by numpy in :func:`_parse_vectorised`,
with no Python loop over frames, bodies or joints.  The blank bytes and the LFs
become bit masks (``np.packbits``: 64 bytes a uint64 word), from which come each
line's start, its token count (blanks inside the line + 1, once single-space
separation is checked: no other blank byte, no two blanks in a row but CR LF) and
the end of any token (the next set bit).  The record structure is then checked on
the per-line token counts in bulk (header line of one token; per frame a one-token
count line followed by that many records of a 10-field info line, the joint-count
line and ``num_joints`` 12-field joint lines).  Numbers are read SWAR-style (SIMD
within a register): each token right-aligned in uint64 words, digits checked and
combined 8 at a time; a plain decimal (``[+-]digits[.digits]``, at most 15 digits)
becomes integer mantissa / exact power of ten, one correctly rounded division, so
the double is bit-identical to Python's / numpy's conversion; any other number (an
exponent, a long mantissa) goes through numpy's conversion.

A file without that plain layout (blank lines, tabs, double spaces, ``+`` signs in
counts, ...) goes to the token path (:func:`_parse_tokens`: the structure checked on
``bytes.split()`` tokens, then each non-blank line's field count against its record,
so that fields moved between lines are an error at the first wrong line, not shifted
coordinates); both paths return the same arrays for the files they both accept.
Body ids must fit int64 (Kinect's have 17 digits; a larger one is an error at its
line).  Only the fields the pipeline uses (counts, body ids, x y z) are converted
on these paths; any inconsistency (wrong counts, a
non-numeric or non-finite value, a field count that breaks the record structure,
trailing data) falls back to a line-by-line validator that raises
:class:`SkeletonFormatError` naming the file, the line and what was expected.
``strict=True`` runs that validator on every file (all 12 joint fields).
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Union

import numpy as np

__all__ = [
    "SkeletonFormatError", "SkeletonSequence", "decode_text", "read_skeleton", "parse_skeleton_text",
    "validate_skeleton_text", "body_energy", "body_order", "select_bodies", "BODY_INFO_FIELDS",
    "JOINT_FIELDS", "NTU_NUM_JOINTS", "KINECT_MAX_BODIES",
]

BODY_INFO_FIELDS = 10          # bodyID clippedEdges ... trackingState
JOINT_FIELDS = 12              # x y z depthX depthY colorX colorY orientationWXYZ trackingState
NTU_NUM_JOINTS = 25            # Kinect v2
KINECT_MAX_BODIES = 4          # slots kept by the reference reader (read_xyz max_body)

PathLike = Union[str, Path]


class SkeletonFormatError(ValueError):
    """A ``.skeleton`` (or other skeleton text) file does not follow its format.

    ``str(error)`` reads ``"<file>:<line>: <what was expected>"``; the parts are
    also available as ``.path``, ``.line`` and ``.reason``.
    """

    def __init__(self, path: PathLike, line: Optional[int], reason: str):
        self.path, self.line, self.reason = str(path), line, reason
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {reason}")

    def __reduce__(self):  # keep the three fields across multiprocessing
        return (type(self), (self.path, self.line, self.reason))


def decode_text(path: PathLike, raw: bytes, expected: str, encoding: str = "utf-8") -> str:
    """``raw.decode(encoding)``, or :class:`SkeletonFormatError` at the line of the first bad byte
    (``expected`` says what the file should hold)."""
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise SkeletonFormatError(path, raw[: exc.start].count(b"\n") + 1,
                                  f"byte 0x{raw[exc.start]:02x} at offset {exc.start} is not "
                                  f"{encoding.upper().removesuffix('-SIG')}: expected {expected}") from None


@dataclass
class SkeletonSequence:
    """One parsed ``.skeleton`` file.

    Attributes:
        name: sample name (file stem, e.g. ``S001C001P001R001A001``).
        num_frames: the header's frame count T.
        joints: ``(S, T, V, 3)`` float32 x y z in metres, slot order, zero = absent.
        present: ``(S, T)`` bool, slot s holds a body in frame t.
        body_ids: ``(S, T)`` int64 Kinect body id per slot and frame (-1 = absent).
        bodies_per_frame: ``(T,)`` int, the per-frame body counts as in the file.
    """

    name: str
    num_frames: int
    joints: np.ndarray
    present: np.ndarray
    body_ids: np.ndarray
    bodies_per_frame: np.ndarray

    @property
    def max_bodies(self) -> int:
        """Largest number of bodies in one frame (may exceed the number of slots)."""
        return int(self.bodies_per_frame.max(initial=0))

    def by_body_id(self) -> Dict[int, np.ndarray]:
        """``{body_id: (T, V, 3)}``: the joints regrouped by tracked body id instead of slot."""
        out: Dict[int, np.ndarray] = {}
        for body_id in np.unique(self.body_ids[self.present]):
            where = self.present & (self.body_ids == body_id)            # (S, T)
            arr = np.zeros(self.joints.shape[1:], dtype=self.joints.dtype)
            slot, frame = np.nonzero(where)
            arr[frame] = self.joints[slot, frame]
            out[int(body_id)] = arr
        return out


def _error(path, line, reason):
    return SkeletonFormatError(path, line, reason)


def _parse_count(token: str) -> int:
    value = int(token)                    # ValueError on '3.5', 'abc'
    if value < 0:
        raise ValueError("negative count")
    return value


def parse_skeleton_text(text: Union[str, bytes], path: PathLike = "<text>", max_bodies: int = KINECT_MAX_BODIES,
                        num_joints: int = NTU_NUM_JOINTS) -> SkeletonSequence:
    """Parse the content of a ``.skeleton`` file.

    The vectorised path first, then the token path for files without the plain line
    layout; on any error the line-by-line validator explains it.
    """
    raw = text.encode("ascii", errors="replace") if isinstance(text, str) else bytes(text)
    try:
        seq = _parse_vectorised(raw, path, max_bodies, num_joints)
    except (ValueError, IndexError, OverflowError):
        seq = None
    if seq is not None:
        return seq
    try:
        return _parse_tokens(raw, path, max_bodies, num_joints)
    except SkeletonFormatError:
        raise
    except (ValueError, IndexError, OverflowError):
        pass
    try:
        decoded = raw.decode("ascii") if not isinstance(text, str) else text
    except UnicodeDecodeError as exc:
        raise _error(path, raw[: exc.start].count(b"\n") + 1, "non-ASCII byte: expected plain numbers") from None
    validate_skeleton_text(decoded, path, num_joints)
    # The validator found nothing wrong line by line: report what the fast path saw.
    raise _error(path, None, "inconsistent record structure (no single line to blame)")


# ---------------------------------------------------------------- vectorised fast path
_SPACE, _LF, _CR, _MINUS, _PLUS = 0x20, 0x0A, 0x0D, 0x2D, 0x2B
_WORD = 8                       # bytes per uint64 word (SWAR: SIMD within a register)
_FLOAT_WORDS = 2                # a plain decimal token of at most 16 bytes after its sign
_INT_WORDS = 3                  # an integer token of at most 18 digits after its sign
_MAX_INT_DIGITS = 18            # every 18-digit integer fits int64 (Kinect body ids have 17)
# Clinger's exact case: an integer mantissa below 2**53 (at most 15 decimal digits) divided
# by an exactly representable power of ten is one correctly rounded IEEE division, i.e. the
# same double as Python's / numpy's string conversion of the decimal.
_MAX_MANTISSA_DIGITS = 15


def _bytes_const(byte: int) -> np.uint64:
    return np.uint64(int.from_bytes(bytes([byte]) * _WORD, "little"))


_HIGH = _bytes_const(0x80)
_LOW7 = _bytes_const(0x7F)
_NIBBLE = _bytes_const(0x0F)
_GE_ZERO = _bytes_const(0x80 - ord("0"))       # byte + this has its high bit set iff byte >= '0'
_GE_COLON = _bytes_const(0x80 - ord("9") - 1)  # ... iff byte > '9'
_DOTS = _bytes_const(ord("."))
_ONE, _SEVEN, _NINE, _U8, _U16, _U32, _SIXTY_THREE = (np.uint64(k) for k in (1, 7, 9, 8, 16, 32, 63))
_PAIRS, _QUADS, _OCTS = np.uint64(0x00FF00FF00FF00FF), np.uint64(0x0000FFFF0000FFFF), np.uint64(0xFFFFFFFF)
_TEN, _HUNDRED, _TEN_THOUSAND = np.uint64(10), np.uint64(100), np.uint64(10000)
_POW10_UINT = np.array([10 ** k for k in range(_WORD * _FLOAT_WORDS)], dtype=np.uint64)
_WORD_SCALE = np.array([10 ** (_WORD * k) for k in range(_INT_WORDS - 1, -1, -1)], dtype=np.uint64)


def _keep_table(words: int) -> np.ndarray:
    """``(8*words + 1, words)`` uint64: row L keeps the last L bytes of a ``words``-word window."""
    width = words * _WORD
    keep = np.zeros((width + 1, width), dtype=np.uint8)
    for length in range(width + 1):
        keep[length, width - length:] = 0xFF
    return keep.view("<u8")


_KEEP = {words: _keep_table(words) for words in (_FLOAT_WORDS, _INT_WORDS)}


def _eight_digits(words: np.ndarray) -> np.ndarray:
    """uint64 words of 8 digit values (0..9, first digit in the lowest byte) -> their 8-digit numbers."""
    v = (words * _TEN + (words >> _U8)) & _PAIRS
    v = (v * _HUNDRED + (v >> _U16)) & _QUADS
    return (v * _TEN_THOUSAND + (v >> _U32)) & _OCTS


def _token_words(raw: bytes, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, words: int):
    """SWAR look at tokens: each token (less a leading ``+``/``-``) right-aligned in ``words`` uint64.

    Needs ``ends >= 8 * words`` (the window stays inside the file).  Returns
    ``(numbers, dot_flags, ok, negative)``: ``numbers`` ``(n, words)`` the 8-digit number of
    each word with every non-digit read as 0; ``dot_flags`` 0x80 in the bytes holding a dot;
    ``ok`` the token is digits and dots only (at least one digit) after its sign and fits the
    window (non-ASCII bytes are neither digit nor dot, so they fail it); ``negative`` it
    starts with ``-``.
    """
    width = words * _WORD
    windows = np.ndarray(shape=(len(raw) - width + 1,), dtype=f"V{width}", buffer=raw, strides=(1,))
    w = windows[ends - width].view("<u8").reshape(len(ends), words)        # (n, words), one gather
    head = buf[starts]
    negative = head == _MINUS
    lengths = ends - starts - (negative | (head == _PLUS))
    ok = (lengths - 1).view(np.uint64) < width                             # 1 <= length <= width
    mask = _KEEP[words].take(np.minimum(lengths, width), axis=0)           # (n, words)
    w &= mask
    digit_flag = w + _GE_ZERO
    digit_flag &= ~(w + _GE_COLON)
    digit_flag &= _HIGH
    x = w ^ _DOTS
    dot_flag = (x & _LOW7) + _LOW7
    dot_flag |= x
    np.invert(dot_flag, out=dot_flag)
    dot_flag &= _HIGH                                                      # exact zero-byte test
    mask &= _HIGH
    mask ^= digit_flag | dot_flag                                          # token bytes of another kind
    digit_mask = digit_flag >> _SEVEN
    digit_mask = (digit_mask << _U8) - digit_mask                          # 0xFF in every digit byte
    if words == 2:
        ok &= ((mask[:, 0] | mask[:, 1]) == 0) & ((digit_mask[:, 0] | digit_mask[:, 1]) != 0)
    else:
        ok &= ~mask.any(axis=1) & digit_mask.any(axis=1)
    w &= _NIBBLE
    w &= digit_mask
    return _eight_digits(w), dot_flag, ok, negative


def _parse_ints(raw: bytes, buf, starts, ends, signed: bool) -> Optional[np.ndarray]:
    """Plain decimal integers (``-`` allowed when ``signed``) -> int64; None if any token is not one."""
    values = np.zeros(len(starts), dtype=np.int64)
    near = ends < _INT_WORDS * _WORD                     # too close to the file start for a window
    for k in np.flatnonzero(near).tolist():              # at most the first two tokens
        token = raw[starts[k]:ends[k]]
        digits = token[1:] if signed and token.startswith(b"-") else token
        if not (digits.isdigit() and len(digits) <= _MAX_INT_DIGITS):
            return None
        values[k] = int(token)
    far = np.flatnonzero(~near)
    if len(far):
        numbers, dot_flag, ok, negative = _token_words(raw, buf, starts[far], ends[far], _INT_WORDS)
        if (not ok.all() or dot_flag.any() or (buf[starts[far]] == _PLUS).any() or (negative.any() and not signed)
                or (ends[far] - starts[far] - negative > _MAX_INT_DIGITS).any()):
            return None
        value = (numbers @ _WORD_SCALE).astype(np.int64)
        values[far] = np.where(negative, -value, value)
    return values


def _parse_floats(raw: bytes, buf, starts, ends) -> np.ndarray:
    """Tokens (``ends >= 16``) -> float64, bit-identical to ``np.array(tokens, dtype=np.float64)``.

    A plain decimal (``[+-]digits[.digits]``, at most 15 digits) is its digit string read as
    an integer (SWAR), divided by the exact power of ten of its fraction digits; other tokens
    (an exponent, more digits) go through numpy's conversion, which raises ValueError on a
    non-number.
    """
    numbers, dot_flag, ok, negative = _token_words(raw, buf, starts, ends, _FLOAT_WORDS)
    # The dot reads as a 0 digit: ``spread`` = (digits left of it) * 10**(frac + 1) + (fraction).
    spread = numbers[:, 0] * _WORD_SCALE[-2] + numbers[:, 1]              # exact uint64
    counts = np.bitwise_count(dot_flag)
    dots = counts[:, 0] + counts[:, 1]
    has_dot = ok & (dots == 1)
    ok &= dots <= 1
    # frac = bytes right of the dot.  Over the 128-bit window (word 0 low) a flag in byte j
    # has 8j + 7 trailing zero bits and 15 - j bytes after it.
    trailing = np.bitwise_count((dot_flag - _ONE) & ~dot_flag)             # 64 for a word without dot
    trailing = trailing[:, 0] + trailing[:, 1] * (dot_flag[:, 0] == 0)
    frac = ((127 - trailing.astype(np.int64)) >> 3) * has_dot
    scale = _POW10_UINT.take(frac)
    right = spread % scale
    mantissa = (spread - right) // (_ONE + _NINE * has_dot) + right         # the digits without the dot
    ok &= mantissa < _POW10_UINT[_MAX_MANTISSA_DIGITS]                       # < 2**53: exact as a double
    values = mantissa.astype(np.float64)
    values /= scale.astype(np.float64)                                       # 10**frac: exact as a double
    values.view(np.uint64)[...] ^= negative.astype(np.uint64) << _SIXTY_THREE   # flip the sign bit: -x
    if not ok.all():
        odd = np.flatnonzero(~ok)
        values[odd] = np.array([raw[a:b] for a, b in zip(starts[odd].tolist(), ends[odd].tolist())],
                               dtype=np.float64)
    return values


def _bit_words(mask: np.ndarray) -> np.ndarray:
    """bool ``(n,)`` -> uint64 words, bit j of word w = element 64 w + j, plus one zero word."""
    packed = np.packbits(mask, bitorder="little")
    padded = np.zeros(-(-len(packed) // _WORD) * _WORD + _WORD, dtype=np.uint8)
    padded[: len(packed)] = packed
    return padded.view("<u8")


def _low_bits(positions: np.ndarray) -> np.ndarray:
    """Mask of the bits below each position within its word: ``(1 << (p % 64)) - 1``."""
    return (_ONE << (positions.astype(np.uint64) & _SIXTY_THREE)) - _ONE


def _bits_before(words: np.ndarray, cumulative: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Number of set bits at positions ``< p`` (``cumulative`` = exclusive prefix counts per word)."""
    index = positions >> 6
    return cumulative[index] + np.bitwise_count(words[index] & _low_bits(positions))


def _next_bits(words: np.ndarray, positions: np.ndarray, count: int = 1) -> np.ndarray:
    """``(n, count)`` positions of the first ``count`` set bits ``>= p`` (they must exist)."""
    index = positions >> 6
    x = words[index] & ~_low_bits(positions)
    found = np.empty((len(positions), count), dtype=np.int64)
    for k in range(count):
        miss = np.flatnonzero(x == 0)
        while len(miss):                                 # tokens that run into the next word(s)
            index[miss] += 1
            if index[miss].max() >= len(words):
                raise IndexError("no set bit after the position")
            x[miss] = words[index[miss]]
            miss = miss[x[miss] == 0]
        low = x & (~x + _ONE)                            # the lowest set bit
        found[:, k] = (index << 6) + np.bitwise_count(low - _ONE)
        x ^= low
    return found


def _set_bits(words: np.ndarray) -> np.ndarray:
    """Sorted positions of all set bits (few: one per line)."""
    index = np.flatnonzero(words)
    x, base = words[index], index << 6
    out = []
    while len(x):                                        # one pass per set bit of the busiest word
        low = x & (~x + _ONE)
        out.append(base + np.bitwise_count(low - _ONE))
        x = x ^ low
        keep = x != 0
        x, base = x[keep], base[keep]
    return np.sort(np.concatenate(out)) if out else np.zeros(0, dtype=np.int64)


def _parse_vectorised(raw: bytes, path: PathLike, max_bodies: int, num_joints: int) -> Optional[SkeletonSequence]:
    """Whole-file numpy parse of the plain layout; None for any other file (the token path decides).

    Plain layout: tokens separated by single spaces, lines by LF or CRLF, no blank line
    (a missing final newline is fine), and the record structure of the module docstring.
    Then each line's token count is its number of spaces + 1, and the token stream is the
    one :func:`_parse_tokens` walks, so both return the same arrays.
    """
    if not raw.endswith(b"\n"):
        raw += b"\n"
    if raw[0] <= _SPACE:
        return None
    buf = np.frombuffer(raw, dtype=np.uint8)
    # Blank bytes as a bit mask (packed: counting and searching run over 64 bytes a word).
    blank = _bit_words(buf <= _SPACE)
    cumulative = np.concatenate(([0], np.cumsum(np.bitwise_count(blank), dtype=np.int64)))
    line_end = _set_bits(_bit_words(buf == _LF))                          # (L,) byte offsets of the LFs
    line_start = np.concatenate(([0], line_end[:-1] + 1))                  # (L,) byte offsets
    crlf = buf[line_end - 1] == _CR                                        # (L,) the line ends with CR LF
    # Only spaces, LFs and CRs before LFs: the blank count says so (any other blank byte, or
    # another CR, would add to it).  No two blanks in a row but those CR LF: no blank line,
    # no double space, no space at a line end.
    num_crlf = int(np.count_nonzero(crlf))
    adjacent = int(np.bitwise_count(blank & (blank >> _ONE)).sum(dtype=np.int64)
                   + np.bitwise_count((blank[:-1] >> _SIXTY_THREE) & blank[1:] & _ONE).sum(dtype=np.int64))
    if (cumulative[-1] != len(line_end) + num_crlf + np.count_nonzero(buf == _SPACE)
            or adjacent != num_crlf):
        return None
    per_line = (_bits_before(blank, cumulative, line_end) - _bits_before(blank, cumulative, line_start)
                - crlf + 1)                                                # tokens = spaces + 1

    record = num_joints + 2                                                # info line, joint count, joints
    info = np.flatnonzero(per_line == BODY_INFO_FIELDS)
    count_lines = info + 1
    if (per_line[0] != 1 or not np.array_equal(np.flatnonzero(per_line == JOINT_FIELDS),
                                                (count_lines[:, None] + np.arange(1, num_joints + 1)).ravel())
            or (per_line[count_lines] != 1).any()):
        return None
    single = per_line == 1
    single[0] = False
    single[count_lines] = False
    frame_lines = np.flatnonzero(single)
    last = len(per_line) - 1
    if len(frame_lines) + len(info) * record != last:                     # a line of another size
        return None

    # A line's first token runs from the line start to the next blank.
    count_start = line_start[count_lines]
    count_end = _next_bits(blank, count_start)[:, 0]
    joint_count = str(num_joints).encode()
    if not (count_end - count_start == len(joint_count)).all() or any(
            (buf[count_start + k] != char).any() for k, char in enumerate(joint_count)):
        return None                                                        # e.g. "025": the token path decides
    int_lines = np.concatenate(([0], frame_lines, info))                   # header, body counts, body ids
    numbers = _parse_ints(raw, buf, line_start[int_lines], _next_bits(blank, line_start[int_lines])[:, 0], signed=True)
    if numbers is None:
        return None
    num_frames = int(numbers[0])
    bodies = numbers[1 : 1 + len(frame_lines)]
    if (num_frames == 0 or len(frame_lines) != num_frames or frame_lines[0] != 1
            or (bodies < 0).any() or (bodies > last).any()
            or not np.array_equal(np.diff(np.append(frame_lines, last + 1)) - 1, bodies * record)):
        return None
    # Body m of frame t sits m records after the frame's count line.
    frame = np.repeat(np.arange(num_frames), bodies)
    slot = (info - frame_lines[frame] - 1) // record
    kept = slot < max_bodies
    info, frame, slot, ids = info[kept], frame[kept], slot[kept], numbers[1 + len(frame_lines):][kept]

    num_slots = max(1, min(max_bodies, int(bodies.max(initial=0))))
    joints = np.zeros((num_slots, num_frames, num_joints, 3), dtype=np.float32)
    present = np.zeros((num_slots, num_frames), dtype=bool)
    body_ids = np.full((num_slots, num_frames), -1, dtype=np.int64)
    if len(info):
        lines = (info[:, None] + np.arange(2, record)).ravel()             # (n,) joint lines of kept bodies
        ends = _next_bits(blank, line_start[lines], 3)                     # (n, 3) blanks after x, y, z
        starts = np.empty_like(ends)
        starts[:, 0] = line_start[lines]
        starts[:, 1:] = ends[:, :2] + 1
        if ends[0, 0] < _FLOAT_WORDS * _WORD:
            return None
        values = _parse_floats(raw, buf, starts.ravel(), ends.ravel())
        if not np.isfinite(values).all():
            return None
        joints[slot, frame] = values.reshape(len(info), num_joints, 3)
        present[slot, frame] = True
        body_ids[slot, frame] = ids
    return SkeletonSequence(name=Path(str(path)).stem, num_frames=num_frames, joints=joints,
                            present=present, body_ids=body_ids, bodies_per_frame=bodies)


def _parse_tokens(raw: bytes, path: PathLike, max_bodies: int, num_joints: int) -> SkeletonSequence:
    """``bytes.split()`` tokens, a loop over frames/bodies; ValueError / IndexError on a bad file."""
    tokens = raw.split()
    if not tokens:
        raise _error(path, 1, "empty file: expected the number of frames on line 1")
    num_frames = _parse_count(tokens[0])
    if num_frames == 0:
        raise _error(path, 1, "the header says 0 frames: expected at least one frame")
    if num_frames > len(tokens) - 1:             # each frame has at least its body count: checked before allocating
        raise _error(path, 1, f"the header says {num_frames} frames, but only {len(tokens) - 1} values follow "
                              f"(expected at least one, the body count, per frame)")
    body_record = 1 + BODY_INFO_FIELDS + num_joints * JOINT_FIELDS   # info + joint count + joints
    joint_token = str(num_joints).encode()
    bodies_per_frame = [0] * num_frames
    id_pos: List[int] = []        # token index of the body id of each kept (slot < max_bodies) body
    slots: List[int] = []
    frames: List[int] = []
    pos = 1
    for t in range(num_frames):
        nb = _parse_count(tokens[pos])
        bodies_per_frame[t] = nb
        pos += 1
        for m in range(nb):
            if tokens[pos + BODY_INFO_FIELDS] != joint_token and int(tokens[pos + BODY_INFO_FIELDS]) != num_joints:
                raise ValueError("joint count")
            if m < max_bodies:
                id_pos.append(pos)
                slots.append(m)
                frames.append(t)
            pos += body_record
    if pos != len(tokens):
        raise ValueError("trailing or missing tokens")
    line_of_token = _check_line_layout(raw, path, bodies_per_frame, num_joints)
    bodies = np.asarray(bodies_per_frame, dtype=np.int64)
    num_slots = max(1, min(max_bodies, int(bodies.max(initial=0))))
    joints = np.zeros((num_slots, num_frames, num_joints, 3), dtype=np.float32)
    present = np.zeros((num_slots, num_frames), dtype=bool)
    body_ids = np.full((num_slots, num_frames), -1, dtype=np.int64)
    if id_pos:
        first_joint = np.asarray(id_pos) + (BODY_INFO_FIELDS + 1)
        offsets = (np.arange(num_joints)[:, None] * JOINT_FIELDS + np.arange(3)[None, :]).ravel()
        index = (first_joint[:, None] + offsets[None, :]).ravel().tolist()
        values = np.array(operator.itemgetter(*index)(tokens), dtype=np.float64)
        if not np.isfinite(values).all():
            raise ValueError("non-finite coordinate")
        slot_idx, frame_idx = np.asarray(slots), np.asarray(frames)
        joints[slot_idx, frame_idx] = values.reshape(len(id_pos), num_joints, 3)
        present[slot_idx, frame_idx] = True
        ids = [int(tokens[i]) for i in id_pos]          # ValueError on '1.5': the validator names the line
        for i, body_id in zip(id_pos, ids):
            if not _INT64_MIN <= body_id <= _INT64_MAX:
                raise _error(path, line_of_token(i), f"body info line: bodyID {tokens[i].decode()!r} does not fit "
                                                     f"a signed 64-bit integer (Kinect body ids have 17 digits)")
        body_ids[slot_idx, frame_idx] = ids
    return SkeletonSequence(name=Path(str(path)).stem, num_frames=num_frames, joints=joints,
                            present=present, body_ids=body_ids, bodies_per_frame=bodies)


_INT64_MIN, _INT64_MAX = -(2 ** 63), 2 ** 63 - 1
_LINE_KINDS = {1: "count line", BODY_INFO_FIELDS: "body info line", JOINT_FIELDS: "joint line"}


def _check_line_layout(raw: bytes, path: PathLike, bodies_per_frame: List[int], num_joints: int):
    """The token walk ignores line breaks: check that every non-blank line holds its record's field count.

    Catches fields moved between lines (a joint line of 11 fields then one of 13), which
    keep the token stream's length but shift the coordinates.  Raises
    :class:`SkeletonFormatError` at the first wrong line; returns a function mapping a
    token index to its 1-based line number (for later errors).
    """
    lines = raw.splitlines()
    counts = np.fromiter(map(len, map(bytes.split, lines)), dtype=np.int64, count=len(lines))
    nonblank = np.flatnonzero(counts)
    got = counts[nonblank]
    record = [BODY_INFO_FIELDS, 1] + [JOINT_FIELDS] * num_joints
    expected = [1]
    for nb in bodies_per_frame:
        expected.append(1)
        expected += record * nb
    expected = np.asarray(expected, dtype=np.int64)
    if len(got) != len(expected) or not np.array_equal(got, expected):
        n = min(len(got), len(expected))
        wrong = np.flatnonzero(got[:n] != expected[:n])
        k = int(wrong[0]) if len(wrong) else n
        want = int(expected[k]) if k < len(expected) else None
        if k >= len(got):
            raise _error(path, len(lines) + 1, f"unexpected end of file: expected a {_LINE_KINDS[want]}")
        line = int(nonblank[k]) + 1
        if want is None:
            raise _error(path, line, "unexpected data after the last frame's records")
        plural = "s" if want != 1 else ""
        raise _error(path, line, f"{_LINE_KINDS[want]}: expected {want} field{plural}, got {int(got[k])}")
    ends = np.cumsum(got)

    def line_of_token(index: int) -> int:
        return int(nonblank[np.searchsorted(ends, index, side="right")]) + 1

    return line_of_token


def _check_numbers(fields: List[str], path, line: int, what: str) -> None:
    for k, field in enumerate(fields):
        try:
            value = float(field)
        except ValueError:
            raise _error(path, line, f"{what}: field {k + 1} is {field!r}, expected a number") from None
        if not math.isfinite(value):
            raise _error(path, line, f"{what}: field {k + 1} is {field!r}, expected a finite number")


def validate_skeleton_text(text: str, path: PathLike = "<text>", num_joints: int = NTU_NUM_JOINTS) -> None:
    """Check a ``.skeleton`` file line by line; raise :class:`SkeletonFormatError` at the first fault.

    Slow (a Python loop over every line): used to explain a failure of the fast
    parser and for ``strict=True``.
    """
    lines = text.splitlines()
    n = len(lines)

    def need(i: int, what: str) -> List[str]:
        if i >= n:
            raise _error(path, i + 1, f"unexpected end of file: expected {what}")
        return lines[i].split()

    def count(i: int, what: str) -> int:
        fields = need(i, what)
        if len(fields) != 1:
            raise _error(path, i + 1, f"expected {what} (one integer), got {len(fields)} fields")
        try:
            return _parse_count(fields[0])
        except ValueError:
            raise _error(path, i + 1, f"expected {what} (a non-negative integer), got {fields[0]!r}") from None

    num_frames = count(0, "the number of frames")
    if num_frames == 0:
        raise _error(path, 1, "the header says 0 frames: expected at least one frame")
    i = 1
    for t in range(num_frames):
        nb = count(i, f"the number of bodies of frame {t + 1}/{num_frames}")
        i += 1
        for m in range(nb):
            info = need(i, f"the body info line of frame {t + 1}, body {m + 1}")
            if len(info) != BODY_INFO_FIELDS:
                raise _error(path, i + 1, f"body info line of frame {t + 1}, body {m + 1}: "
                                          f"expected {BODY_INFO_FIELDS} fields, got {len(info)}")
            try:
                body_id = int(info[0])
            except ValueError:
                raise _error(path, i + 1, f"body info line: bodyID {info[0]!r} is not an integer") from None
            if not _INT64_MIN <= body_id <= _INT64_MAX:
                raise _error(path, i + 1, f"body info line: bodyID {info[0]!r} does not fit a signed 64-bit "
                                          f"integer (Kinect body ids have 17 digits)")
            _check_numbers(info[1:], path, i + 1, "body info line")
            i += 1
            nj = count(i, f"the joint count of frame {t + 1}, body {m + 1}")
            if nj != num_joints:
                raise _error(path, i + 1, f"expected {num_joints} joints, got {nj}")
            i += 1
            for j in range(nj):
                fields = need(i, f"joint {j + 1}/{nj} of frame {t + 1}, body {m + 1}")
                if len(fields) != JOINT_FIELDS:
                    raise _error(path, i + 1, f"joint line: expected {JOINT_FIELDS} fields, got {len(fields)}")
                _check_numbers(fields, path, i + 1, "joint line")
                i += 1
    for k in range(i, n):
        if lines[k].strip():
            raise _error(path, k + 1, f"unexpected data after the {num_frames} frames announced on line 1")


def read_skeleton(path: PathLike, max_bodies: int = KINECT_MAX_BODIES, num_joints: int = NTU_NUM_JOINTS,
                  strict: bool = False) -> SkeletonSequence:
    """Read one ``.skeleton`` file (see :func:`parse_skeleton_text`).

    Raises:
        SkeletonFormatError: malformed content (file and line in the message).
        OSError: the file cannot be read.
    """
    raw = Path(path).read_bytes()
    if strict:
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError as exc:
            raise _error(path, raw[: exc.start].count(b"\n") + 1, "non-ASCII byte: expected plain numbers") from None
        validate_skeleton_text(text, path, num_joints)
    return parse_skeleton_text(raw, path, max_bodies, num_joints)


def body_energy(joints: np.ndarray) -> np.ndarray:
    """``(S, T, V, 3) -> (S,)``: sum over x, y, z of the std over the slot's non-zero frames.

    A slot with no non-zero frame has energy 0 (the reference's ``get_nonzero_std``).
    """
    joints = np.asarray(joints, dtype=np.float64)
    valid = joints.sum(axis=(2, 3)) != 0                                   # (S, T)
    count = valid.sum(axis=1) * joints.shape[2]                            # values per axis
    w = valid[:, :, None, None]
    weigh = (lambda x: x) if valid.all() else (lambda x: x * w)           # x * 1.0 == x: skip the pass
    safe = np.maximum(count, 1)[:, None]
    mean = weigh(joints).sum(axis=(1, 2)) / safe                           # (S, 3)
    var = weigh((joints - mean[:, None, None, :]) ** 2).sum(axis=(1, 2)) / safe
    energy = np.sqrt(var).sum(axis=1)
    return np.where(count > 0, energy, 0.0)


def body_order(joints: np.ndarray, num: int = 2) -> np.ndarray:
    """``(S, T, V, 3) -> (min(S, num),)`` slot indices by decreasing energy (ties keep slot order)."""
    joints = np.asarray(joints)
    if joints.shape[0] <= 1:                     # one slot: nothing to rank
        return np.arange(min(joints.shape[0], num))
    return np.argsort(-body_energy(joints), kind="stable")[:num]


def select_bodies(joints: np.ndarray, num: int = 2) -> np.ndarray:
    """``(S, T, V, 3) -> (num, T, V, 3)``: the ``num`` highest-energy slots, highest first.

    Ties keep slot order; fewer than ``num`` slots are padded with zero bodies.
    """
    joints = np.asarray(joints)
    order = body_order(joints, num)
    out = np.zeros((num,) + joints.shape[1:], dtype=joints.dtype)
    out[: len(order)] = joints[order]
    return out
