"""An offline, model-free describer: one short sentence per skeleton sample.

Input: one gendata sample ``(3, T, V, M)`` (pre-normalised: metres, +z up,
+x = right minus left shoulder, person 0's spine at the origin in every frame)
and its number of valid frames.  Output: one line of at most ``max_chars``
characters (default 75, the paper's limit), e.g.
``"a person lifts the right hand to the face twice, then lowers it"`` or
``"two people approach and hug, then part, for about 3 seconds"``.

The sentence is built from the motion of that sample only, never from its
label, and says as much of it as fits: which body parts move and which side
(left / right hand, both hands), where to and how high (mouth / face / head /
chest, hands together, forward / up / out / down; floor, knee, waist, chest,
shoulder, face height, above the head), how often (once, twice, three times,
... counted from the oscillations), how (quickly / slowly), whether the hand
comes back, what the body does (sits down, stands up, squats, lowers / rises,
leans or bends forward and by how much, turns left / right, steps, kicks) and
how long the clip lasts; for two people whether they approach, touch (hand to
hand, one hand or both hands on the other, an embrace), push or separate.
Joints are found by their layout names (``hand_right`` or ``wrist_right``,
``head`` or ``nose``, ...), so any layout with those names works; no joint
index is hard-coded.

All features are vectorised numpy over the frames of one sample
(:meth:`KinematicDescriber.features`); distances are in units of the person's
torso length (neck to hip, median over frames) and speeds in torso lengths per
frame at ``fps`` frames per second (thresholds are given for 30 fps and scaled),
so thresholds do not depend on body size.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from net.graph import Layout

__all__ = ["KinematicThresholds", "KinematicDescriber", "count_cycles", "count_word"]


@dataclass(frozen=True)
class KinematicThresholds:
    """Decision thresholds (torso lengths, torso lengths per frame at 30 fps, degrees, seconds); hand-set.

    near_head / near_mouth / near_chest / hands_together: closest distance that counts as "at";
    near_face: closest hand-to-mouth distance that reads "to the face" (with ``2 * min_travel`` of approach).
    min_travel: a target counts only when the hand came from at least this much farther away.
    reach_forward / reach_out: horizontal hand offset from its shoulder at the peak.
    raise_up: hand height above its shoulder at the peak (``above_head``: above the head).
    reach_down: hand height below the hip (``reach_down`` torso lengths) at the peak.
    lean_deg / bend_deg / deep_bend_deg: torso tilt increase for "leans", "bends", "bends deeply".
    hip_drop: drop (or rise) of hip-over-feet height, in torso lengths, for sit / squat / stand.
    foot_lift: one foot higher than the other (kick, steps).
    fast / slow: peak speed of the moving part (at 30 fps).
    repeat_cycles: cycles of the main signal counted as a repetition ("twice" and more).
    active_part: range of motion for a part to count as moving.
    oscillation: range of the detrended hand path (or hand distance) that counts a cycle.
    hold: fraction of the frames the hands stay together that reads "holds" rather than "claps".
    turn_deg: change of the shoulder line's heading that reads "turns".
    approach / touch: change of the distance between two people / closest hand-to-body distance.
    embrace: hip-to-hip distance under which two people touching with both hands "hug";
    close: closest hip-to-hip distance that reads "stand close" (else "stand apart").
    brief_s / long_s: clip durations read "briefly" / "for about N seconds" (``long_s`` and more).
    """

    near_head: float = 0.45
    near_mouth: float = 0.35
    near_face: float = 0.85
    near_chest: float = 0.35
    hands_together: float = 0.45
    min_travel: float = 0.3
    reach_forward: float = 0.75
    reach_out: float = 0.75
    raise_up: float = 0.15
    above_head: float = 0.1
    reach_down: float = 0.2
    lean_deg: float = 12.0
    bend_deg: float = 25.0
    deep_bend_deg: float = 55.0
    hip_drop: float = 0.35
    foot_lift: float = 0.3
    fast: float = 0.09
    slow: float = 0.035
    repeat_cycles: float = 2.0
    active_part: float = 0.25
    oscillation: float = 0.2
    hold: float = 0.3
    turn_deg: float = 60.0
    approach: float = 0.5
    touch: float = 0.45
    embrace: float = 1.5
    close: float = 2.0
    brief_s: float = 1.2
    long_s: float = 2.0


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


_COUNT_WORDS = {1: "once", 2: "twice", 3: "three times", 4: "four times", 5: "five times"}


def count_word(n: int) -> str:
    """1 -> 'once', 2 -> 'twice', 3..5 -> 'three times'..., more -> 'many times'."""
    return _COUNT_WORDS.get(int(n), "many times" if n > 5 else "")


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

#: height levels of a hand, from the top; ``_level`` picks the first one the hand is above
_LEVELS = ("above the head", "face height", "shoulder height", "chest height", "waist height", "knee height",
           "the floor")


class KinematicDescriber:
    """Describe skeleton samples of one layout.

    Args:
        layout: joint layout (names are looked up; see module docstring).
        max_chars: sentence length limit (paper: 75).
        thresholds: decision thresholds.
        smooth: moving-average window (frames) applied before the features.
        fps: frame rate of the data (speeds and durations; NTU / Kinect: 30).
    """

    def __init__(self, layout: Layout, max_chars: int = 75, thresholds: KinematicThresholds | None = None,
                 smooth: int = 5, fps: float = 30.0) -> None:
        self.layout = layout
        self.max_chars = int(max_chars)
        self.th = thresholds or KinematicThresholds()
        self.smooth = int(smooth)
        self.fps = float(fps)
        self.speed_scale = 30.0 / self.fps  # thresholds are per frame at 30 fps
        names = layout.joint_names
        self.idx: Dict[str, int] = {}
        for key, options in _CANDIDATES.items():
            found = next((names.index(o) for o in options if o in names), None)
            if found is None:
                raise ValueError(f"layout {layout.name}: no joint named any of {options} (needed for {key!r})")
            self.idx[key] = found

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
        """Motion features of one sample ``(3, T, V, M)``; see the class docstring for units.

        Only the first ``num_frames`` frames (default: all ``T``) are read, never the padding after
        them.  One valid frame gives pose-only features (no motion: speeds and cycles are 0, no pair
        features); zero valid frames is a ``ValueError``.
        """
        sample = np.asarray(sample, dtype=np.float32)
        if sample.ndim != 4 or sample.shape[0] != 3 or sample.shape[2] != self.layout.num_joints:
            raise ValueError(f"expected a (3, T, {self.layout.num_joints}, M) sample, got {sample.shape}")
        t = sample.shape[1] if num_frames is None else min(int(num_frames), sample.shape[1])
        if t < 1:
            raise ValueError(f"cannot describe a sample without valid frames: num_frames={num_frames}, "
                             f"{sample.shape[1]} stored frames (expected num_frames >= 1)")
        x = sample[:, :t].transpose(3, 1, 2, 0)  # (M, T, V, 3)
        present = np.abs(x).reshape(x.shape[0], t, -1).sum(-1) > 0  # (M, T)
        persons = [m for m in range(x.shape[0]) if present[m].mean() > 0.3]
        if not persons:
            return {"persons": [], "frames": t}
        i = self.idx
        neck_hip = np.linalg.norm(x[:, :, i["neck"]] - x[:, :, i["hip"]], axis=-1)
        torso = float(np.median(neck_hip[persons[0]][present[persons[0]]]))
        torso = torso if torso > 1e-3 else 1.0
        feats: Dict[str, object] = {"persons": [], "torso_m": torso, "frames": t}
        for m in persons:
            feats["persons"].append(self._person_features(self._smooth(x[m] / torso)))
        if len(persons) >= 2:
            a, b = (self._smooth(x[m] / torso) for m in persons[:2])
            both = present[persons[0]] & present[persons[1]]
            a, b = a[both], b[both]
            if len(a) >= 2:
                feats["pair"] = self._pair_features(a, b)
        return feats

    def _pair_features(self, a: np.ndarray, b: np.ndarray) -> Dict[str, object]:
        """Two people ``(T, V, 3)`` each (frames where both are present), torso units."""
        i = self.idx
        centre = np.linalg.norm(a[:, i["hip"], :2] - b[:, i["hip"], :2], axis=-1)
        hands = [i["hand_left"], i["hand_right"]]
        d_ab = np.linalg.norm(a[:, hands, None] - b[:, None], axis=-1)  # (T, 2, V): a's hands to b's joints
        d_ba = np.linalg.norm(b[:, hands, None] - a[:, None], axis=-1)
        ah, bh = d_ab.min(axis=(0, 2)), d_ba.min(axis=(0, 2))           # (2,) closest per hand
        ab, ba = d_ab.min(axis=(1, 2)), d_ba.min(axis=(1, 2))           # (T,)
        hand_hand = np.linalg.norm(a[:, hands, None] - b[:, None, hands], axis=-1).min(axis=0)  # (2, 2)
        contact = np.minimum(ab, ba)
        first = int(np.argmin(contact))
        n0 = max(1, len(centre) // 10)
        touching = contact < self.th.touch
        reacher = 0 if ab.min() <= ba.min() else 1
        if contact.min() >= self.th.touch:      # no contact: the person whose hands move more
            reach = [float(np.ptp(p[:, hands], axis=0).max()) for p in (a, b)]
            reacher = int(np.argmax(reach))
        mover = a if reacher == 0 else b
        other = b if reacher == 0 else a
        active = np.ptp(mover[:, hands], axis=0).max(-1) >= self.th.active_part   # (2,) hands that move
        touch_hands = ((ah if reacher == 0 else bh) < self.th.touch) & active
        # hip displacements after the contact: pushed = the other moves away much more than the reacher
        moved = [float(np.linalg.norm(q[-1, i["hip"], :2] - q[first, i["hip"], :2])) for q in (other, mover)]
        pushed = moved[0] if touching.any() and moved[0] > 1.5 * moved[1] else 0.0
        return {
            "start": float(centre[:n0].mean()), "min": float(centre.min()),
            "end": float(centre[-n0:].mean()), "contact": float(contact.min()),
            "contact_frac": float(touching.mean()),
            "after_contact": float(centre[first:].max() - centre[first]),
            "sep_speed": float(np.diff(centre[first:]).max()) if len(centre) - first > 1 else 0.0,
            "reacher": reacher,
            "touch_sides": [s for s, on in zip(("left", "right"), touch_hands) if on],
            "both_hands_touch": bool((ah < self.th.touch).all() or (bh < self.th.touch).all()),
            "hand_to_hand": float(hand_hand.min()),
            "hand_pair": tuple(("left", "right")[k] for k in np.unravel_index(np.argmin(hand_hand), (2, 2))),
            "pushed": pushed,
        }

    def _person_features(self, p: np.ndarray) -> Dict[str, object]:
        """Per-person features from ``(T, V, 3)`` coordinates in torso units."""
        i, th = self.idx, self.th
        head, neck, hip = p[:, i["head"]], p[:, i["neck"]], p[:, i["hip"]]
        mouth = head + 0.3 * (neck - head)
        chest = neck + 0.35 * (hip - neck)
        knee_z = (p[:, i["knee_left"], 2] + p[:, i["knee_right"], 2]) / 2
        foot_z = np.minimum(p[:, i["foot_left"], 2], p[:, i["foot_right"], 2])
        # level boundaries per frame (T, 6), from the top: head top, face, shoulder, chest, waist, knee
        bounds = np.stack([head[:, 2] + th.above_head, mouth[:, 2] - 0.15, neck[:, 2] - 0.2,
                           chest[:, 2] - 0.25, hip[:, 2] - 0.35, (knee_z + foot_z) / 2], axis=1)
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
            height = hand[:, 2]
            top, bottom = int(np.argmax(height)), int(np.argmin(height))
            out["hands"][side] = {
                "range": float(np.linalg.norm(rng)),
                "start": {k: float(v[:n0].mean()) for k, v in series.items()},
                "end": {k: float(v[-n0:].mean()) for k, v in series.items()},
                "min": {k: float(v.min()) for k, v in series.items()},
                "max": {k: float(v.max()) for k, v in series.items()},
                "peak_speed": float(np.percentile(speed, 95)) if len(speed) else 0.0,
                "cycles": max(count_cycles(wiggle[:, k], th.oscillation) for k in range(3)),
                "cycles_lat": max(count_cycles(wiggle[:, k], th.oscillation) for k in range(2)),
                "cycles_up": count_cycles(height - height.min(), th.oscillation + th.min_travel),
                "top_level": int(np.count_nonzero(height[top] < bounds[top])),
                "low_level": int(np.count_nonzero(height[bottom] < bounds[bottom])),
                "start_level": int(np.count_nonzero(height[:n0].mean() < bounds[:n0].mean(0))),
            }
        lh, rh = p[:, i["hand_left"]], p[:, i["hand_right"]]
        d_hands = np.linalg.norm(lh - rh, axis=-1)
        together = d_hands < max(th.hands_together, float(d_hands.min()) + 0.1)
        mid_z = (lh[:, 2] + rh[:, 2]) / 2
        at = int(np.argmin(d_hands))
        out["hands_dist"] = {"start": float(d_hands[:n0].mean()), "min": float(d_hands.min()),
                             "end": float(d_hands[-n0:].mean()), "hold": float(together.mean()),
                             "level": int(np.count_nonzero(mid_z[at] < bounds[at])),
                             "cycles": count_cycles(d_hands - self._smooth(d_hands, max(3, len(p) // 4)),
                                                    th.oscillation)}
        up_axis = neck - hip
        tilt = np.degrees(np.arccos(np.clip(up_axis[:, 2] / np.maximum(np.linalg.norm(up_axis, axis=-1), 1e-6),
                                            -1, 1)))
        feet = p[:, [i["foot_left"], i["foot_right"]]]
        hip_h = hip[:, 2] - feet[:, :, 2].min(axis=1)  # torso units
        lift = feet[:, 0, 2] - feet[:, 1, 2]  # left minus right foot height
        knees = p[:, i["knee_left"], 2] - p[:, i["knee_right"], 2]
        shoulders = p[:, i["shoulder_right"], :2] - p[:, i["shoulder_left"], :2]
        heading = np.unwrap(np.arctan2(shoulders[:, 1], shoulders[:, 0]))
        turn = np.degrees(heading - heading[:n0].mean())
        h0 = float(hip_h[:n0].mean())
        out["body"] = {
            "tilt_start": float(tilt[:n0].mean()), "tilt_max": float(tilt.max()), "tilt_end": float(tilt[-n0:].mean()),
            "hip_start": h0, "hip_min": float(hip_h.min()) - h0, "hip_end": float(hip_h[-n0:].mean()) - h0,
            "hip_max": float(hip_h.max()) - h0,
            "lift_left": float(lift.max()), "lift_right": float(-lift.min()),
            "step_cycles": count_cycles(knees, th.foot_lift / 2),
            "leg_speed": float(np.percentile(np.linalg.norm(np.diff(feet - hip[:, None], axis=0), axis=-1), 95))
            if len(p) > 1 else 0.0,
            "head_range": float(np.linalg.norm(np.ptp(head - neck, axis=0))),
            "turn": float(turn[int(np.argmax(np.abs(turn)))]), "turn_end": float(turn[-n0:].mean()),
        }
        out["peak_speed"] = float(np.percentile(np.concatenate(speed_all), 95)) if len(p) > 1 else 0.0
        return out

    # -------------------------------------------------------------- sentences
    def _speed_word(self, speed: float) -> str:
        speed *= self.speed_scale
        return "quickly" if speed >= self.th.fast else ("slowly" if speed <= self.th.slow else "")

    def _count(self, cycles: float) -> str:
        """Repetitions from oscillation cycles: '' below ``repeat_cycles``, else 'twice', 'three times', ..."""
        if cycles < self.th.repeat_cycles:
            return ""
        return count_word(int(round(cycles)))

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

        top = _LEVELS[min(hands[s]["top_level"] for s in sides)]
        low = _LEVELS[max(hands[s]["low_level"] for s in sides)]
        cycles = max(hands[s]["cycles"] for s in sides)
        reps = self._count(cycles)
        phrases: List[Tuple[float, str]] = []  # (score, clause); the count goes on the best one
        hd = f["hands_dist"]
        if both and hd["min"] < th.hands_together and hd["start"] - hd["min"] > th.min_travel:
            level = _LEVELS[hd["level"]]
            if hd["cycles"] >= th.repeat_cycles and hd["hold"] < th.hold * 2:
                phrases.append((3.6 + hd["start"] - hd["min"],
                                f"claps {count_word(int(round(hd['cycles'])))} at {level}".replace("  ", " ")))
                reps = ""
            elif agg("min", "d_chest", max) < th.near_chest or hd["hold"] >= th.hold:
                where = "on the chest" if agg("min", "d_chest", max) < th.near_chest else f"together at {level}"
                phrases.append((3.4 + travel("d_chest") + hd["hold"], f"holds both hands {where}"))
            else:
                phrases.append((3.0 + hd["start"] - hd["min"], f"brings the hands together at {level}"))
        if agg("min", "d_mouth", max) < th.near_mouth and travel("d_mouth") > th.min_travel:
            phrases.append((3.5 + travel("d_mouth"), f"brings {who} to the mouth"))
        elif agg("min", "d_head", max) < th.near_head and travel("d_head") > th.min_travel:
            phrases.append((3.2 + travel("d_head"), f"raises {who} to the head"))
        elif agg("min", "d_mouth", max) < th.near_face and travel("d_mouth") > 2 * th.min_travel:
            phrases.append((3.3 + travel("d_mouth") / 2, f"lifts {who} up to the face"))
        rise = agg("max", "up", min) - agg("start", "up", max)
        if rise > th.min_travel and top in _LEVELS[:3]:
            lateral = max(hands[s]["cycles_lat"] for s in sides) >= max(th.repeat_cycles,
                                                                          max(hands[s]["cycles_up"] for s in sides))
            verb = "waves" if lateral and top in _LEVELS[:2] else "raises"
            obj = who if verb == "waves" else arm
            where = "above the head" if top == _LEVELS[0] else f"to {top}"
            if verb == "waves":
                where = "above the head" if top == _LEVELS[0] else f"at {top}"
            phrases.append(((2.6 + rise) if top == _LEVELS[0] or verb == "waves" else (2.2 + rise / 2),
                            f"{verb} {obj} {where}"))
        fwd = agg("max", "fwd", min)
        if fwd > th.reach_forward and fwd - agg("start", "fwd", max) > th.min_travel:
            phrases.append((2.5 + fwd, f"stretches {arm} forward at {top}"))
        if agg("max", "out", min) > th.reach_out and agg("max", "out", min) - agg("start", "out", max) > th.min_travel:
            phrases.append((2.4 + agg("max", "out", min), f"spreads {arm} out to the side"))
        if (agg("min", "d_chest", max) < th.near_chest and travel("d_chest") > th.min_travel
                and not any("mouth" in p or "hands" in p for _, p in phrases)):
            phrases.append((2.6 + travel("d_chest"), f"puts {who} on the chest"))
        if agg("max", "down", min) > th.reach_down + 0.5:
            target = "to the floor" if low == _LEVELS[-1] else f"to {low}"
            phrases.append((3.4 + agg("max", "down", min), f"reaches {who} down {target}"))
        speed = max(hands[s]["peak_speed"] for s in sides)
        if not phrases:
            phrases.append((1.0 + ranges[-1][0], f"moves {arm} at {top}" if top != _LEVELS[-1] else f"moves {arm}"))
        phrases.sort(key=lambda sp: -sp[0])
        score, text = phrases[0]
        manner = " ".join(w for w in (reps, self._speed_word(speed)) if w)
        if manner:
            text = f"{text} {manner}"
        returned = all(hands[s]["end"]["up"] < hands[s]["max"]["up"] - th.min_travel for s in sides)
        if returned and not reps and any(v in text for v in ("raises", "brings", "stretches", "waves")):
            text = f"{text}, then lowers {its}"
        phrases[0] = (score, text)
        return phrases

    def _body_phrases(self, f: Dict[str, object]) -> List[Tuple[float, str]]:
        th, b = self.th, f["body"]
        phrases: List[Tuple[float, str]] = []
        drop, rise = -b["hip_min"], b["hip_max"]
        if drop > th.hip_drop:
            if b["hip_end"] < -th.hip_drop:
                sit = b["tilt_end"] < th.bend_deg
                phrases.append((3.5 + drop, ("sits down" if sit else "crouches down")
                                + (" low" if drop > 2.5 * th.hip_drop else "")))
            else:
                fast = b["leg_speed"] * self.speed_scale >= th.fast and rise > th.hip_drop / 2  # off the ground
                phrases.append((3.3 + drop, "bends the knees and springs up" if fast else
                                ("squats deeply and stands up" if drop > 2.5 * th.hip_drop else
                                 "squats down and stands up")))
        elif rise > th.hip_drop and b["hip_end"] > th.hip_drop:
            phrases.append((3.5 + rise, "stands up from a seat" if rise > 2.5 * th.hip_drop else "rises up"))
        bend = b["tilt_max"] - b["tilt_start"]
        if bend > th.lean_deg:
            back = b["tilt_end"] < b["tilt_max"] - bend / 2
            if bend > th.deep_bend_deg:
                word = "bends over deeply"
            elif bend > th.bend_deg:
                word = "bends forward"
            else:
                word = "leans forward slightly"
            score = (3.0 if bend > th.bend_deg and not phrases else 1.5) + bend / 45.0
            phrases.append((score, f"{word}, then straightens up" if back and bend > th.bend_deg else word))
        if abs(b["turn"]) > th.turn_deg:
            side = "left" if b["turn"] > 0 else "right"
            word = "turns around" if abs(b["turn"]) > 135 else f"turns to the {side}"
            phrases.append((2.0 + abs(b["turn"]) / 90.0, word))
        lift_l, lift_r = b["lift_left"], b["lift_right"]
        if b["step_cycles"] >= th.repeat_cycles and min(lift_l, lift_r) > th.foot_lift / 2:
            steps = int(round(b["step_cycles"] * 2))
            phrases.append((3.4 + b["step_cycles"] / 4, f"takes {steps} steps" if steps <= 9 else "walks in place"))
        elif max(lift_l, lift_r) > th.foot_lift and drop < th.hip_drop:
            side = "left" if lift_l > lift_r else "right"
            verb = "kicks with" if b["leg_speed"] * self.speed_scale >= th.fast else "lifts"
            phrases.append((3.3 + max(lift_l, lift_r), f"{verb} the {side} leg"))
        return phrases

    def _duration(self, frames: int) -> str:
        seconds = frames / self.fps
        if seconds < self.th.brief_s:
            return "briefly"
        if seconds >= self.th.long_s:
            return f"for about {int(round(seconds))} seconds"
        return ""

    def _pair_clauses(self, f: Dict[str, object]) -> List[str]:
        pair, th, persons = f["pair"], self.th, f["persons"]
        approached = pair["start"] - pair["min"] > th.approach
        lead = ("two people approach" if approached else "two people stand close" if pair["min"] < th.close
                else "two people face each other" if pair["contact"] < th.touch else "two people stand apart")
        reacher = persons[min(pair["reacher"], len(persons) - 1)]
        hands = reacher["hands"]
        moving = [s for s in ("left", "right") if hands[s]["range"] >= th.active_part]
        sides = pair["touch_sides"] or moving
        who = "both hands" if len(sides) == 2 else (f"the {sides[0]} hand" if sides else "a hand")
        clauses = [lead]
        if pair["contact"] < th.touch:
            if pair["both_hands_touch"] and pair["min"] < th.embrace:
                clauses.append("and hug" if approached else "they hug")
            elif pair["pushed"] > th.approach / 2 and pair["sep_speed"] * self.speed_scale > th.fast / 2:
                clauses.append(f"one pushes the other back with {who}")
            elif pair["hand_to_hand"] < th.touch and len(set(pair["hand_pair"])) == 1:
                clauses.append(f"they join {pair['hand_pair'][0]} hands")
            else:
                clauses.append(f"one touches the other with {who}")
            if pair["contact_frac"] > 0.5:
                clauses[-1] += " for a while"
        elif moving:
            top = _LEVELS[min(hands[s]["top_level"] for s in moving)]
            fwd = max(hands[s]["max"]["fwd"] for s in moving)
            verb = "points" if fwd > th.reach_forward and len(moving) == 1 else "reaches"
            clauses.append(f"one {verb} at the other with {who}" if verb == "points" else
                           f"one reaches {who} toward the other at {top}")
        if pair["end"] - pair["min"] > th.approach:
            clauses.append("then part" if len(clauses) > 1 else "and then part")
        return clauses

    def describe(self, sample: np.ndarray, num_frames: Optional[int] = None) -> str:
        """One sentence (≤ ``max_chars``) for one sample ``(3, T, V, M)``.

        A sample with a single valid frame shows no motion: it reads "a person is shown in a single
        frame, no motion" (or "two people ..."), never a movement guessed from one pose.
        """
        f = self.features(sample, num_frames)
        persons = f["persons"]
        if not persons:
            return "no person is visible"
        if int(f["frames"]) == 1:
            who = "a person is" if len(persons) == 1 else "two people are"
            return self._fit([f"{who} shown in a single frame", "no motion"], joiner=", ")
        duration = self._duration(int(f["frames"]))
        if "pair" in f:
            parts = self._pair_clauses(f)
            text = parts[0] if parts[1:2] and parts[1].startswith("and ") else None
            if text is not None:                        # "two people walk up to each other and hug"
                parts = [f"{parts[0]} {parts[1]}"] + parts[2:]
            reacher = persons[min(f["pair"]["reacher"], len(persons) - 1)]
            body = [c for _, c in sorted(self._body_phrases(reacher) + self._hand_phrases(reacher),
                                         key=lambda sp: -sp[0])][:1]
            parts += [f"one {c}" for c in body] + ([duration] if duration else [])
            return self._fit(parts, joiner=", ")
        clauses = [text for _, text in sorted(self._hand_phrases(persons[0]) + self._body_phrases(persons[0]),
                                              key=lambda sp: -sp[0])]
        if not clauses:
            b = persons[0]["body"]
            clauses = ["stands still" if b["head_range"] < self.th.active_part else "moves the head"]
        first = f"a person {clauses[0]}"
        if len(first) > self.max_chars and ", then " in first:
            first = first.rsplit(", then ", 1)[0]
        return self._fit([first] + clauses[1:3] + ([duration] if duration else []), joiner=", ")

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
