"""An offline, model-free describer: one short sentence per skeleton sample.

Input: one gendata sample ``(3, T, V, M)`` (pre-normalised: metres, +z up,
+x = right minus left shoulder, person 0's spine at the origin in every frame)
and its number of valid frames.  Output: one line of at most ``max_chars``
characters (default 75, the paper's limit), e.g.
``"a person brings the right hand to the mouth slowly, then lowers it"``.

The sentence is built from the motion of that sample only, never from its
label: which body parts move, where to (hand to head / mouth / chest, hands
together, arm forward / up / out, reach down, bend forward, sit down, stand up,
squat, kick, alternate steps), how (quickly / slowly, repeatedly), and for two
people whether they approach, touch or move apart.  Joints are found by their
layout names (``hand_right`` or ``wrist_right``, ``head`` or ``nose``, ...), so
any layout with those names works; no joint index is hard-coded.

All features are vectorised numpy over the frames of one sample
(:meth:`KinematicDescriber.features`); distances are in units of the person's
torso length (neck to hip, median over frames) and speeds in torso lengths per
frame, so thresholds do not depend on body size.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from net.graph import Layout

__all__ = ["KinematicThresholds", "KinematicDescriber", "count_cycles"]


@dataclass(frozen=True)
class KinematicThresholds:
    """Decision thresholds (torso lengths, torso lengths per frame, degrees); hand-set on NTU-like data.

    near_head / near_mouth / near_chest / hands_together: closest distance that counts as "at".
    min_travel: a target counts only when the hand came from at least this much farther away.
    reach_forward / reach_out: horizontal hand offset from its shoulder at the peak.
    raise_up: hand height above its shoulder at the peak (``above_head``: above the head).
    reach_down: hand height below the hip (``reach_down`` torso lengths) at the peak.
    bend_deg: torso tilt increase from vertical for "bends forward".
    hip_drop: relative drop of hip-over-feet height for sit / squat / stand.
    foot_lift: one foot higher than the other (kick, steps).
    fast / slow: peak speed of the moving part.
    repeat_cycles: cycles of the main signal counted as "repeatedly".
    active_part: range of motion for a part to count as moving.
    oscillation: range of the detrended hand path (or hand distance) that counts a cycle.
    approach / touch: change of the distance between two people / closest hand-to-body distance.
    """

    near_head: float = 0.45
    near_mouth: float = 0.35
    near_chest: float = 0.35
    hands_together: float = 0.3
    min_travel: float = 0.3
    reach_forward: float = 0.75
    reach_out: float = 0.75
    raise_up: float = 0.15
    above_head: float = 0.1
    reach_down: float = 0.2
    bend_deg: float = 25.0
    hip_drop: float = 0.25
    foot_lift: float = 0.3
    fast: float = 0.09
    slow: float = 0.035
    repeat_cycles: float = 2.0
    active_part: float = 0.25
    oscillation: float = 0.2
    approach: float = 0.5
    touch: float = 0.3


def count_cycles(signal: np.ndarray, min_amplitude: float) -> float:
    """Oscillation cycles of a 1-D signal, with hysteresis at mid ± a quarter of its range (vectorised).

    Returns 0 when the range is below ``min_amplitude``.
    """
    lo, hi = float(np.min(signal)), float(np.max(signal))
    amp = hi - lo
    if amp < min_amplitude:
        return 0.0
    mid = (lo + hi) / 2
    state = np.where(signal > mid + amp / 4, 1, np.where(signal < mid - amp / 4, -1, 0))
    state = state[state != 0]
    if state.size < 2:
        return 0.0
    return float(np.count_nonzero(state[1:] != state[:-1])) / 2.0


_CANDIDATES = {
    "head": ("head", "nose"),
    "neck": ("spine_shoulder", "neck", "shoulder_center"),
    "hip": ("spine_base", "hip_center"),
    "hand_left": ("hand_left", "wrist_left"),
    "hand_right": ("hand_right", "wrist_right"),
    "shoulder_left": ("shoulder_left",),
    "shoulder_right": ("shoulder_right",),
    "knee_left": ("knee_left",),
    "knee_right": ("knee_right",),
    "foot_left": ("foot_left", "ankle_left"),
    "foot_right": ("foot_right", "ankle_right"),
}


class KinematicDescriber:
    """Describe skeleton samples of one layout.

    Args:
        layout: joint layout (names are looked up; see module docstring).
        max_chars: sentence length limit (paper: 75).
        thresholds: decision thresholds.
        smooth: moving-average window (frames) applied before the features.
    """

    def __init__(self, layout: Layout, max_chars: int = 75, thresholds: KinematicThresholds | None = None,
                 smooth: int = 5) -> None:
        self.layout = layout
        self.max_chars = int(max_chars)
        self.th = thresholds or KinematicThresholds()
        self.smooth = int(smooth)
        names = layout.joint_names
        self.idx: Dict[str, int] = {}
        for key, options in _CANDIDATES.items():
            found = next((names.index(o) for o in options if o in names), None)
            if found is None:
                raise ValueError(f"layout {layout.name}: no joint named any of {options} (needed for {key!r})")
            self.idx[key] = found
        if "hip" not in self.idx:
            self.idx["hip"] = layout.hip

    # ---------------------------------------------------------------- features
    def _smooth(self, x: np.ndarray, window: Optional[int] = None) -> np.ndarray:
        """Moving average along axis 0 (edge-padded), vectorised via a cumulative sum."""
        w = min(self.smooth if window is None else window, x.shape[0])
        if w <= 1:
            return x
        pad = np.concatenate([np.repeat(x[:1], w // 2, 0), x, np.repeat(x[-1:], w - 1 - w // 2, 0)], 0)
        c = np.cumsum(pad, axis=0, dtype=np.float64)
        c = np.concatenate([np.zeros_like(c[:1]), c], 0)
        return ((c[w:] - c[:-w]) / w).astype(np.float32)

    def features(self, sample: np.ndarray, num_frames: Optional[int] = None) -> Dict[str, object]:
        """Motion features of one sample ``(3, T, V, M)``; see the class docstring for units."""
        sample = np.asarray(sample, dtype=np.float32)
        if sample.ndim != 4 or sample.shape[0] != 3 or sample.shape[2] != self.layout.num_joints:
            raise ValueError(f"expected a (3, T, {self.layout.num_joints}, M) sample, got {sample.shape}")
        t = sample.shape[1] if num_frames is None else max(2, min(int(num_frames), sample.shape[1]))
        x = sample[:, :t].transpose(3, 1, 2, 0)  # (M, T, V, 3)
        present = np.abs(x).reshape(x.shape[0], t, -1).sum(-1) > 0  # (M, T)
        persons = [m for m in range(x.shape[0]) if present[m].mean() > 0.3]
        if not persons:
            return {"persons": []}
        i = self.idx
        neck_hip = np.linalg.norm(x[:, :, i["neck"]] - x[:, :, i["hip"]], axis=-1)
        torso = float(np.median(neck_hip[persons[0]][present[persons[0]]]))
        torso = torso if torso > 1e-3 else 1.0
        feats: Dict[str, object] = {"persons": [], "torso_m": torso}
        for m in persons:
            feats["persons"].append(self._person_features(self._smooth(x[m] / torso)))
        if len(persons) >= 2:
            a, b = (self._smooth(x[m] / torso) for m in persons[:2])
            both = present[persons[0]] & present[persons[1]]
            a, b = a[both], b[both]
            if len(a) >= 2:
                centre = np.linalg.norm(a[:, i["hip"]] - b[:, i["hip"]], axis=-1)
                hands = [i["hand_left"], i["hand_right"]]
                ah = np.linalg.norm(a[:, hands, None] - b[:, None], axis=-1).min(axis=(0, 2))  # (2,) per hand
                bh = np.linalg.norm(b[:, hands, None] - a[:, None], axis=-1).min(axis=(0, 2))
                ab = np.linalg.norm(a[:, hands, None] - b[:, None], axis=-1).min(axis=(1, 2))  # (T,)
                ba = np.linalg.norm(b[:, hands, None] - a[:, None], axis=-1).min(axis=(1, 2))
                contact = np.minimum(ab, ba)
                first = int(np.argmin(contact))
                n0 = max(1, len(centre) // 10)
                feats["pair"] = {
                    "start": float(centre[:n0].mean()), "min": float(centre.min()),
                    "end": float(centre[-n0:].mean()), "contact": float(contact.min()),
                    "after_contact": float(centre[first:].max() - centre[first]),
                    "sep_speed": float(np.diff(centre[first:]).max()) if len(centre) - first > 1 else 0.0,
                    "reacher": 0 if ab.min() <= ba.min() else 1,
                    "both_hands_touch": bool((ah < self.th.touch).all() or (bh < self.th.touch).all()),
                }
        return feats

    def _person_features(self, p: np.ndarray) -> Dict[str, object]:
        """Per-person features from ``(T, V, 3)`` coordinates in torso units."""
        i, th = self.idx, self.th
        head, neck, hip = p[:, i["head"]], p[:, i["neck"]], p[:, i["hip"]]
        mouth = head + 0.3 * (neck - head)
        chest = neck + 0.35 * (hip - neck)
        n0 = max(1, len(p) // 10)  # frames that define the start state
        out: Dict[str, object] = {"hands": {}}
        speed_all = []
        for side, sign in (("left", -1.0), ("right", 1.0)):
            hand = p[:, i[f"hand_{side}"]]
            sh = p[:, i[f"shoulder_{side}"]]
            rel = hand - sh
            d_head = np.linalg.norm(hand - head, axis=-1)
            d_mouth = np.linalg.norm(hand - mouth, axis=-1)
            d_chest = np.linalg.norm(hand - chest, axis=-1)
            speed = np.linalg.norm(np.diff(hand - hip, axis=0), axis=-1)
            speed_all.append(speed)
            rng = np.ptp(hand - hip, axis=0)
            series = {"d_head": d_head, "d_mouth": d_mouth, "d_chest": d_chest, "up": rel[:, 2],
                      "fwd": np.abs(rel[:, 1]), "out": rel[:, 0] * sign, "down": hip[:, 2] - hand[:, 2],
                      "over_head": hand[:, 2] - head[:, 2]}
            wiggle = hand - self._smooth(hand, window=max(3, len(p) // 4))  # detrended path
            out["hands"][side] = {
                "range": float(np.linalg.norm(rng)),
                "start": {k: float(v[:n0].mean()) for k, v in series.items()},
                "end": {k: float(v[-n0:].mean()) for k, v in series.items()},
                "min": {k: float(v.min()) for k, v in series.items()},
                "max": {k: float(v.max()) for k, v in series.items()},
                "peak_speed": float(np.percentile(speed, 95)) if len(speed) else 0.0,
                "cycles": max(count_cycles(wiggle[:, k], th.oscillation) for k in range(3)),
            }
        lh, rh = p[:, i["hand_left"]], p[:, i["hand_right"]]
        d_hands = np.linalg.norm(lh - rh, axis=-1)
        out["hands_dist"] = {"start": float(d_hands[:n0].mean()), "min": float(d_hands.min()),
                             "cycles": count_cycles(d_hands - self._smooth(d_hands, max(3, len(p) // 4)),
                                                    th.oscillation)}
        up_axis = neck - hip
        tilt = np.degrees(np.arccos(np.clip(up_axis[:, 2] / np.maximum(np.linalg.norm(up_axis, axis=-1), 1e-6),
                                            -1, 1)))
        feet = p[:, [i["foot_left"], i["foot_right"]]]
        hip_h = hip[:, 2] - feet[:, :, 2].min(axis=1)
        lift = feet[:, 0, 2] - feet[:, 1, 2]  # left minus right foot height
        knees = p[:, i["knee_left"], 2] - p[:, i["knee_right"], 2]
        h0 = max(float(hip_h[:n0].mean()), 1e-3)
        out["body"] = {
            "tilt_start": float(tilt[:n0].mean()), "tilt_max": float(tilt.max()), "tilt_end": float(tilt[-n0:].mean()),
            "hip_start": h0, "hip_min": float(hip_h.min()) / h0, "hip_end": float(hip_h[-n0:].mean()) / h0,
            "hip_max": float(hip_h.max()) / h0,
            "lift_left": float(lift.max()), "lift_right": float(-lift.min()),
            "step_cycles": count_cycles(knees, th.foot_lift / 2),
            "leg_speed": float(np.percentile(np.linalg.norm(np.diff(feet - hip[:, None], axis=0), axis=-1), 95))
            if len(p) > 1 else 0.0,
            "head_range": float(np.linalg.norm(np.ptp(head - neck, axis=0))),
        }
        out["peak_speed"] = float(np.percentile(np.concatenate(speed_all), 95)) if len(p) > 1 else 0.0
        return out

    # -------------------------------------------------------------- sentences
    def _manner(self, speed: float, cycles: float) -> str:
        th = self.th
        words = []
        if cycles >= th.repeat_cycles + 1:
            words.append("repeatedly")
        elif cycles >= th.repeat_cycles:
            words.append("twice")
        if speed >= th.fast:
            words.append("quickly")
        elif speed <= th.slow:
            words.append("slowly")
        return " ".join(words)

    def _hand_phrases(self, f: Dict[str, object]) -> List[Tuple[float, str]]:
        th = self.th
        hands = f["hands"]
        active = {s: h for s, h in hands.items() if h["range"] >= th.active_part}
        if not active:
            return []
        ranges = sorted((h["range"], s) for s, h in active.items())
        both = len(active) == 2 and ranges[0][0] >= 0.6 * ranges[1][0]
        main_side = ranges[-1][1]
        sides = ["left", "right"] if both else [main_side]
        who = "both hands" if both else f"the {main_side} hand"
        arm = "both arms" if both else f"the {main_side} arm"
        its = "them" if both else "it"

        def agg(stat: str, key: str, fn=min) -> float:
            return fn(hands[s][stat][key] for s in sides)

        def travel(key: str) -> float:
            return agg("start", key, max) - agg("min", key, max)

        phrases: List[Tuple[float, str]] = []
        hd = f["hands_dist"]
        if both and hd["min"] < th.hands_together and hd["start"] - hd["min"] > th.min_travel:
            if hd["cycles"] >= th.repeat_cycles:
                phrases.append((3.6 + hd["start"] - hd["min"], "claps the hands together"))
            elif agg("min", "d_chest", max) < th.near_chest:
                phrases.append((3.4 + travel("d_chest"), "puts both hands on the chest"))
            else:
                phrases.append((3.0 + hd["start"] - hd["min"], "brings the hands together"))
        if agg("min", "d_mouth", max) < th.near_mouth and travel("d_mouth") > th.min_travel:
            phrases.append((3.5 + travel("d_mouth"), f"brings {who} to the mouth"))
        elif agg("min", "d_head", max) < th.near_head and travel("d_head") > th.min_travel:
            phrases.append((3.2 + travel("d_head"), f"raises {who} to the head"))
        rise = agg("max", "up", min) - agg("start", "up", max)
        if agg("max", "up", min) > th.raise_up and rise > th.min_travel:
            where = "above the head" if agg("max", "over_head", min) > th.above_head else "to shoulder height"
            phrases.append((2.6 + rise, f"raises {arm} {where}"))
        if agg("max", "fwd", min) > th.reach_forward and agg("max", "fwd", min) - agg("start", "fwd", max) > th.min_travel:
            phrases.append((2.5 + agg("max", "fwd", min), f"stretches {arm} forward"))
        if agg("max", "out", min) > th.reach_out and agg("max", "out", min) - agg("start", "out", max) > th.min_travel:
            phrases.append((2.4 + agg("max", "out", min), f"spreads {arm} out to the side"))
        if (agg("min", "d_chest", max) < th.near_chest and travel("d_chest") > th.min_travel
                and not any("mouth" in p or "hands" in p for _, p in phrases)):
            phrases.append((2.6 + travel("d_chest"), f"puts {who} on the chest"))
        if agg("max", "down", min) > th.reach_down + 0.5:
            phrases.append((2.7 + agg("max", "down", min), f"reaches down with {who}"))
        cycles = max(hands[s]["cycles"] for s in sides)
        speed = max(hands[s]["peak_speed"] for s in sides)
        if not phrases:
            phrases.append((1.0 + ranges[-1][0], f"moves {arm}"))
        # manner on the strongest phrase; "then lowers it" when the hand returns to the start
        phrases.sort(key=lambda sp: -sp[0])
        score, text = phrases[0]
        manner = self._manner(speed, cycles)
        if manner:
            text = f"{text} {manner}"
        returned = all(hands[s]["end"]["up"] < hands[s]["max"]["up"] - th.min_travel for s in sides)
        if returned and ("raises" in text or "brings" in text or "lifts" in text) and cycles < th.repeat_cycles:
            text = f"{text}, then lowers {its}"
        phrases[0] = (score, text)
        return phrases

    def _body_phrases(self, f: Dict[str, object]) -> List[Tuple[float, str]]:
        th, b = self.th, f["body"]
        phrases: List[Tuple[float, str]] = []
        drop = 1.0 - b["hip_min"]
        if drop > th.hip_drop:
            if b["hip_end"] < 1.0 - th.hip_drop:
                phrases.append((3.5 + drop, "sits down" if b["tilt_end"] < th.bend_deg else "crouches down"))
            else:
                fast = b["leg_speed"] >= th.fast
                phrases.append((3.3 + drop, "bends the knees and springs up" if fast else "squats down and stands up"))
        elif b["hip_max"] > 1.0 + th.hip_drop and b["hip_end"] > 1.0 + th.hip_drop:
            phrases.append((3.5 + b["hip_max"] - 1.0, "stands up"))
        bend = b["tilt_max"] - b["tilt_start"]
        if bend > th.bend_deg and not phrases:
            back = b["tilt_end"] < b["tilt_max"] - th.bend_deg / 2
            phrases.append((3.0 + bend / 45.0, "bows forward and rises again" if back else "bends forward"))
        lift_l, lift_r = b["lift_left"], b["lift_right"]
        if b["step_cycles"] >= th.repeat_cycles and min(lift_l, lift_r) > th.foot_lift / 2:
            phrases.append((3.4 + b["step_cycles"] / 4, "steps with alternating legs"))
        elif max(lift_l, lift_r) > th.foot_lift and drop < th.hip_drop:
            side = "left" if lift_l > lift_r else "right"
            verb = "kicks with" if b["leg_speed"] >= th.fast else "lifts"
            phrases.append((3.3 + max(lift_l, lift_r), f"{verb} the {side} leg"))
        return phrases

    def describe(self, sample: np.ndarray, num_frames: Optional[int] = None) -> str:
        """One sentence (≤ ``max_chars``) for one sample ``(3, T, V, M)``."""
        f = self.features(sample, num_frames)
        persons = f["persons"]
        if not persons:
            return "no person is visible"
        clauses = [text for _, text in sorted(self._hand_phrases(persons[0]) + self._body_phrases(persons[0]),
                                              key=lambda sp: -sp[0])]
        if "pair" in f:
            pair, th = f["pair"], self.th
            if pair["start"] - pair["min"] > th.approach:
                lead = "two people approach each other"
            else:
                lead = "two people face each other"
            if pair["contact"] < th.touch:
                if pair["sep_speed"] > th.fast / 2 and pair["after_contact"] > th.approach / 2:
                    pair_clause = "one pushes the other away"
                elif pair["both_hands_touch"]:
                    pair_clause = "they embrace"
                else:
                    pair_clause = "their hands touch"
            elif pair["end"] - pair["min"] > th.approach:
                pair_clause = "then move apart"
            else:
                pair_clause = ""
            body = [c for c in clauses[:1]]
            parts = [lead] + ([pair_clause] if pair_clause else []) + [f"one {c}" for c in body]
            return self._fit(parts, joiner=", ")
        if not clauses:
            b = persons[0]["body"]
            return "a person stands still" if b["head_range"] < self.th.active_part else "a person moves the head"
        return self._fit([f"a person {clauses[0]}"] + clauses[1:3], joiner=" and ")

    def _fit(self, parts: Sequence[str], joiner: str) -> str:
        """Join clauses while the sentence fits ``max_chars``; the first clause is cut on a word if needed."""
        text = parts[0]
        for part in parts[1:]:
            candidate = f"{text}{joiner}{part}"
            if len(candidate) <= self.max_chars:
                text = candidate
        if len(text) > self.max_chars:
            text = text[: self.max_chars + 1].rsplit(" ", 1)[0].rstrip(",")
        return text
