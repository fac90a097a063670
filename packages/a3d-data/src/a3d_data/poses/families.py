"""Activity families of the procedural sampler: joint-angle distributions per activity.

A family writes a batch of poses into a :class:`PoseDraft` in anatomical terms (hip flexion,
knee flexion, where the arm points, ...). Families are written with the *lead* side on the
body's right (the reaching or waving arm, the forward knee); the sampler mirrors half of all
poses afterwards, so either side leads equally often. :meth:`PoseDraft.build` adds a small
jitter, turns the angles into SMPL rotations and clips every joint into
:data:`a3d_data.poses.limits.JOINT_LIMITS`.

Angles are degrees. Leg helpers think in the sagittal plane: a segment's *world* angle is its
angle from hanging straight down, positive to the front, so a horizontal thigh pointing forward
is 90 and a shank going back from the knee is negative.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Literal

import numpy as np

from a3d_data.poses.limits import JOINT_LIMITS, ConeLimit, EulerLimit
from a3d_data.poses.rotations import axis_rotation
from a3d_data.skeleton import NUM_SMPL_JOINTS, SMPL_JOINT_NAMES

Side = Literal["lead", "other"]
LEAD: Final[Side] = "lead"
OTHER: Final[Side] = "other"
SIDES: Final[tuple[Side, Side]] = (LEAD, OTHER)
# The lead side is the body's right before the sampler's random mirroring.
_PREFIX: Final[dict[str, str]] = {LEAD: "R_", OTHER: "L_"}
_JOINT: Final[dict[str, int]] = {name: i for i, name in enumerate(SMPL_JOINT_NAMES)}
# How the spine and the neck share a bend of the torso or the head.
_SPINE_SHARE: Final[tuple[float, float, float]] = (0.4, 0.3, 0.3)
_NECK_SHARE: Final[float] = 0.5


class PoseDraft:
    """A batch of ``count`` poses under construction.

    Attributes
    ----------
    euler : (count, 24, 3) degrees about x, y, z in SMPL's local frames (right side already in
        its mirrored signs), for the joints with an :class:`EulerLimit`.
    arm_direction : side -> (count, 3) unit direction of the upper arm in the parent's frame.
    arm_twist : side -> (count,) degrees about the arm's rest direction.
    pitch, roll : (count,) degrees; the pelvis leans forward by ``pitch`` (R_x) and sideways by
        ``roll`` (R_z) on top of ``base``.
    base : (count, 3, 3) the family's base orientation of the body (identity = upright; lying
        families turn the body horizontal).
    """

    def __init__(self, count: int, rng: np.random.Generator):
        self.count = count
        self.rng = rng
        self.euler = np.zeros((count, NUM_SMPL_JOINTS, 3))
        self.arm_direction = {side: np.tile([1.0, 0.0, 0.0], (count, 1)) for side in SIDES}
        self.arm_direction[LEAD][:, 0] = -1.0
        self.arm_twist = {side: np.zeros(count) for side in SIDES}
        self.pitch = np.zeros(count)
        self.roll = np.zeros(count)
        self.base = np.tile(np.eye(3), (count, 1, 1))

    # Random draws, one value per pose.
    def u(self, low: float | np.ndarray, high: float | np.ndarray) -> np.ndarray:
        """Uniform in [low, high], shape (count,)."""
        return self.rng.uniform(low, high, self.count)

    def normal(self, mean: float | np.ndarray, std: float) -> np.ndarray:
        """Normal, shape (count,)."""
        return self.rng.normal(mean, std, self.count)

    def chance(self, probability: float) -> np.ndarray:
        """Bool (count,), True with ``probability``."""
        return self.rng.random(self.count) < probability

    # The body's orientation.
    def lean(self, pitch: np.ndarray | float = 0.0, roll: np.ndarray | float = 0.0) -> None:
        """Lean the pelvis forward (``pitch`` > 0) and sideways (``roll``), degrees."""
        self.pitch = np.broadcast_to(np.asarray(pitch, dtype=np.float64), (self.count,)).copy()
        self.roll = np.broadcast_to(np.asarray(roll, dtype=np.float64), (self.count,)).copy()

    # Joints. ``x, y, z`` are the left side's signs; the lead (right) side gets the mirror image.
    def _set(self, stem: str, side: Side | None, x=None, y=None, z=None, where=None) -> None:
        joint = _JOINT[stem if side is None else _PREFIX[side] + stem]
        sign = (1.0, -1.0, -1.0) if side == LEAD else (1.0, 1.0, 1.0)
        rows = slice(None) if where is None else np.asarray(where, dtype=bool)
        for axis, value in enumerate((x, y, z)):
            if value is not None:
                value = np.broadcast_to(sign[axis] * np.asarray(value, dtype=np.float64), (self.count,))
                self.euler[rows, joint, axis] = value[rows]

    def torso(self, flex=None, bend=None, twist=None) -> None:
        """Bend the spine forward (``flex``), sideways and twist it, towards the lead side when
        positive; shared between spine1..3. Arguments left out keep their values."""
        self._midline(("spine1", "spine2", "spine3"), _SPINE_SHARE, flex, bend, twist)

    def head(self, flex=None, bend=None, twist=None) -> None:
        """Nod the head forward (``flex``), tilt and turn it towards the lead side; neck and head
        share it. Arguments left out keep their values."""
        self._midline(("neck", "head"), (_NECK_SHARE, 1.0 - _NECK_SHARE), flex, bend, twist)

    def _midline(self, stems, shares, flex, bend, twist) -> None:
        def part(value, share, sign=1.0):
            return None if value is None else sign * share * np.asarray(value)

        for stem, share in zip(stems, shares, strict=True):
            # Towards the lead (right) side: R_z(+) tilts the chest to -x, R_y(-) turns it to -x.
            self._set(stem, None, x=part(flex, share), y=part(twist, share, -1.0), z=part(bend, share))

    def leg(
        self, side: Side, flex, knee, abduction=0.0, internal=0.0, plantar=None, foot=0.0, toes=0.0
    ) -> None:
        """Hip flexion (thigh forward), knee flexion, hip abduction and internal rotation, ankle
        plantar flexion (toes down; ``None``: the foot's pitch from flat on the floor is ``foot``,
        given the pelvis pitch set by :meth:`lean`), toe extension (toes up)."""
        if plantar is None:
            plantar = np.asarray(flex) - np.asarray(knee) - self.pitch + np.asarray(foot)
        self._set("hip", side, x=-np.asarray(flex), y=-np.asarray(internal), z=abduction)
        self._set("knee", side, x=knee)
        self._set("ankle", side, x=plantar)
        self._set("foot", side, x=-np.asarray(toes))

    def leg_sagittal(self, side: Side, thigh, shank, foot=0.0, abduction=0.0, internal=0.0, toes=0.0) -> None:
        """A leg by the world angles of its thigh and shank (see the module docstring) and the
        foot's pitch from flat (toes down > 0), given the pelvis pitch set by :meth:`lean`."""
        thigh, shank = np.asarray(thigh), np.asarray(shank)
        self.leg(side, thigh + self.pitch, thigh - shank, abduction, internal, shank + foot, toes=toes)

    def collar(self, side: Side, elevation=0.0, protraction=0.0) -> None:
        """Raise (shrug) and bring forward the shoulder girdle."""
        self._set("collar", side, y=-np.asarray(protraction), z=elevation)

    def arm(self, side: Side, elevation, azimuth, external=0.0, where=None) -> None:
        """Point the upper arm: ``elevation`` from hanging down (0) through horizontal (90) to
        straight up (180); ``azimuth`` around the vertical from the side (0) to the front (90) and
        across the body (> 90), behind the body when negative; ``external`` rotation about the
        arm (positive turns a bent forearm from the front upwards or outwards). ``where`` (count,)
        bool limits the change to some poses."""
        e, a = np.deg2rad(elevation), np.deg2rad(azimuth)
        direction = np.stack([np.sin(e) * np.cos(a), -np.cos(e), np.sin(e) * np.sin(a)], axis=-1)
        direction = np.broadcast_to(direction, (self.count, 3)).copy()
        twist = -np.broadcast_to(np.asarray(external, dtype=np.float64), (self.count,))
        if side == LEAD:
            # Mirror: the direction reflects through x = 0 and the twist about the (reflected)
            # rest direction changes sign.
            direction[:, 0] *= -1.0
            twist = -twist
        rows = slice(None) if where is None else np.asarray(where, dtype=bool)
        self.arm_direction[side][rows] = direction[rows]
        self.arm_twist[side][rows] = twist[rows]

    def arm_swing(self, side: Side, forward, lateral, external=0.0, where=None) -> None:
        """A lowered arm by its swing from hanging straight down: ``forward`` to the front (negative:
        behind) and ``lateral`` away from the body, degrees."""
        forward, lateral = np.asarray(forward, dtype=np.float64), np.asarray(lateral, dtype=np.float64)
        self.arm(side, np.hypot(forward, lateral), np.rad2deg(np.arctan2(forward, lateral)), external, where)

    def elbow(self, side: Side, flex, twist=0.0, where=None) -> None:
        """Bend the elbow (at rest the forearm comes forward) and twist the forearm."""
        self._set("elbow", side, x=twist, y=-np.asarray(flex), where=where)

    def wrist(self, side: Side, flex=0.0, deviation=0.0) -> None:
        """Bend the hand towards the palm (``flex``) and towards the thumb (``deviation``)."""
        self._set("wrist", side, y=-np.asarray(deviation), z=-np.asarray(flex))

    def build(self, jitter_degrees: float) -> np.ndarray:
        """Rotations (count, 24, 3, 3) float64: angles plus N(0, ``jitter_degrees``) noise, clipped
        to the joint limits; the root is ``base @ R_x(pitch) @ R_z(roll)``."""
        euler = self.euler + self.rng.normal(0.0, jitter_degrees, self.euler.shape)
        rotmats = np.empty((self.count, NUM_SMPL_JOINTS, 3, 3))
        rotmats[:, 0] = self.base @ axis_rotation("x", self.pitch) @ axis_rotation("z", self.roll)
        for joint, limit in enumerate(JOINT_LIMITS):
            if isinstance(limit, EulerLimit):
                rotmats[:, joint] = limit.compose(limit.clip(euler[:, joint]))
            elif isinstance(limit, ConeLimit):
                side = LEAD if SMPL_JOINT_NAMES[joint].startswith(_PREFIX[LEAD]) else OTHER
                rotmats[:, joint] = limit.clip(limit.compose(self.arm_direction[side], self.arm_twist[side]))
        return rotmats


# Shared pieces.
def _relaxed_upper_body(d: PoseDraft) -> None:
    d.torso(flex=d.normal(2.0, 4.0), bend=d.normal(0.0, 3.0), twist=d.normal(0.0, 6.0))
    d.head(flex=d.normal(0.0, 8.0), bend=d.normal(0.0, 4.0), twist=d.normal(0.0, 15.0))
    for side in SIDES:
        d.collar(side, elevation=d.u(-8.0, 3.0), protraction=d.u(-3.0, 8.0))
        d.wrist(side, flex=d.normal(5.0, 10.0), deviation=d.normal(0.0, 5.0))


def _hanging_arm(d: PoseDraft, side: Side) -> None:
    d.arm_swing(side, forward=d.u(-10.0, 20.0), lateral=d.u(8.0, 18.0), external=d.u(-20.0, 25.0))
    d.elbow(side, flex=d.u(0.0, 35.0))


def _idle_arm(d: PoseDraft, side: Side) -> None:
    """Hanging (60%), hand in front of the belly (20%) or hand on the hip (20%)."""
    mode = d.rng.choice(3, size=d.count, p=(0.6, 0.2, 0.2))
    forward = np.select([mode == 0, mode == 1], [d.u(-10, 20), d.u(10, 30)], d.u(-25, -10))
    lateral = np.select([mode == 0, mode == 1], [d.u(8, 18), d.u(8, 15)], d.u(35, 45))
    external = np.select([mode == 0, mode == 1], [d.u(-20, 25), d.u(-75, -50)], d.u(-80, -60))
    flex = np.select([mode == 0, mode == 1], [d.u(0, 35), d.u(75, 100)], d.u(95, 120))
    d.arm_swing(side, forward=forward, lateral=lateral, external=external)
    d.elbow(side, flex=flex)


def _standing_legs(d: PoseDraft) -> None:
    """Weight on the lead leg; the other leg relaxed, a little bent and turned out."""
    d.leg(LEAD, flex=d.normal(2.0, 3.0), knee=d.u(0.0, 6.0), abduction=d.u(0.0, 6.0), internal=d.u(-8, 8))
    d.leg(OTHER, flex=d.u(-5.0, 15.0), knee=d.u(0.0, 20.0), abduction=d.u(0.0, 10.0), internal=d.u(-15, 8))


# The families.
def standing(d: PoseDraft) -> None:
    """Upright, relaxed: arms hanging, in front of the belly or on the hips."""
    d.lean(pitch=d.normal(0.0, 3.0), roll=d.normal(0.0, 2.0))
    _relaxed_upper_body(d)
    _standing_legs(d)
    for side in SIDES:
        _idle_arm(d, side)


def _gait(
    d: PoseDraft, hip_mid, hip_amp, knee_low, knee_amp, arm_amp, foot=0.0, arm_external=0.0
) -> np.ndarray:
    """Legs and arms at a random phase of a gait cycle; returns the phase (radians)."""
    phase = d.u(0.0, 2.0 * np.pi)
    for side, offset in ((LEAD, 0.0), (OTHER, np.pi)):
        leg_phase = phase + offset
        # The knee bends most early in the swing, when the hip passes from extension to flexion.
        knee = knee_low + knee_amp * np.maximum(0.0, np.cos(leg_phase + 0.3)) ** 1.5 + d.u(0.0, 5.0)
        flex = hip_mid + hip_amp * np.sin(leg_phase)
        # The stance foot is flat; the swing foot follows its shank instead of staying level.
        plantar = np.clip(flex - knee - d.pitch + foot, -20.0, 45.0)
        d.leg(side, flex=flex, knee=knee, abduction=d.u(0.0, 6.0), internal=d.u(-8.0, 8.0), plantar=plantar)
        # The arm swings with the opposite leg.
        d.arm_swing(
            side,
            forward=-arm_amp * np.sin(leg_phase) + d.normal(0.0, 4.0),
            lateral=d.u(8.0, 16.0),
            external=arm_external,
        )
    return phase


def walking(d: PoseDraft) -> None:
    """Mid-stride: hips -10..+25 degrees, the swing knee up to ~60, arms swinging opposite."""
    d.lean(pitch=d.u(0.0, 6.0), roll=d.normal(0.0, 2.0))
    _relaxed_upper_body(d)
    phase = _gait(
        d, hip_mid=7.5, hip_amp=d.u(12.0, 20.0), knee_low=5.0, knee_amp=d.u(35, 50), arm_amp=d.u(10, 25)
    )
    d.torso(flex=d.normal(2.0, 3.0), twist=-6.0 * np.sin(phase) + d.normal(0.0, 3.0))
    for side in SIDES:
        d.elbow(side, flex=d.u(10.0, 35.0))


def running(d: PoseDraft) -> None:
    """Running: long hip swing, knees up to ~110, elbows bent near 90, torso leaning forward."""
    d.lean(pitch=d.u(6.0, 16.0), roll=d.normal(0.0, 2.0))
    _relaxed_upper_body(d)
    # Push-off and flight point the toes down; the bent forearms turn in across the body.
    phase = _gait(
        d,
        hip_mid=18.0,
        hip_amp=d.u(25, 38),
        knee_low=15.0,
        knee_amp=d.u(60, 95),
        arm_amp=d.u(25, 45),
        foot=d.u(0.0, 25.0),
        arm_external=-d.u(5.0, 25.0),
    )
    d.torso(flex=d.u(0.0, 8.0), twist=-10.0 * np.sin(phase) + d.normal(0.0, 3.0))
    for side in SIDES:
        d.elbow(side, flex=d.u(70.0, 105.0))


def sitting(d: PoseDraft) -> None:
    """On a chair: thighs about horizontal, shanks about vertical, hands on the thighs or lap."""
    d.lean(pitch=d.u(-15.0, 5.0), roll=d.normal(0.0, 2.0))
    _relaxed_upper_body(d)
    d.torso(flex=d.u(0.0, 20.0), bend=d.normal(0.0, 3.0), twist=d.normal(0.0, 6.0))
    for side in SIDES:
        d.leg_sagittal(
            side,
            thigh=d.u(78.0, 98.0),
            shank=d.u(-20.0, 25.0),
            abduction=d.u(0.0, 18.0),
            internal=d.u(-15, 10),
        )
        d.arm_swing(side, forward=d.u(20.0, 50.0), lateral=d.u(6.0, 16.0), external=d.u(-35.0, 0.0))
        d.elbow(side, flex=d.u(30.0, 80.0))


def sitting_floor(d: PoseDraft) -> None:
    """On the floor: cross-legged (half) or knees drawn up with the feet flat, hands forward."""
    d.lean(pitch=d.u(-20.0, 0.0), roll=d.normal(0.0, 2.0))
    _relaxed_upper_body(d)
    d.torso(flex=d.u(5.0, 25.0), twist=d.normal(0.0, 5.0))
    crossed = d.chance(0.5)
    for side in SIDES:
        # Cross-legged: thighs about horizontal, spread and turned out, shanks folded in front.
        # Knees up: thighs rise to the knees and the shanks come down to feet by the buttocks.
        thigh = np.where(crossed, d.u(80.0, 100.0), d.u(115.0, 135.0))
        shank = np.where(crossed, thigh - d.u(130.0, 150.0), d.u(-5.0, 20.0))
        d.leg(
            side,
            flex=thigh + d.pitch,
            knee=thigh - shank,
            abduction=np.where(crossed, d.u(40.0, 55.0), d.u(5.0, 20.0)),
            internal=np.where(crossed, d.u(-60.0, -45.0), d.u(-10.0, 10.0)),
            # Crossed feet lie on their outer edge under the other leg; drawn-up feet are flat.
            plantar=np.where(crossed, d.u(0.0, 30.0), shank),
        )
        d.arm_swing(side, forward=d.u(25.0, 60.0), lateral=d.u(10.0, 25.0), external=d.u(-30.0, 0.0))
        d.elbow(side, flex=d.u(10.0, 60.0))


def crouching(d: PoseDraft) -> None:
    """Squatting: thighs about horizontal, knees deep, torso forward, feet flat or heels up."""
    thigh = d.u(80.0, 110.0)
    # The hip cannot flex past its limit: a deeper squat leaves less room to lean forward.
    d.lean(pitch=np.minimum(d.u(15.0, 40.0), 130.0 - thigh), roll=d.normal(0.0, 2.0))
    _relaxed_upper_body(d)
    d.torso(flex=d.u(5.0, 25.0))
    d.head(flex=d.u(-25.0, 5.0))
    heels_up = d.chance(0.4)
    for side in SIDES:
        d.leg_sagittal(
            side,
            thigh=thigh + d.normal(0.0, 4.0),
            shank=d.u(-45.0, -25.0),
            foot=np.where(heels_up, d.u(25.0, 45.0), 0.0),
            toes=np.where(heels_up, d.u(25.0, 45.0), 0.0),
            abduction=d.u(8.0, 25.0),
            internal=d.u(-20.0, 0.0),
        )
        d.arm_swing(side, forward=d.u(30.0, 80.0), lateral=d.u(5.0, 25.0), external=d.u(-30.0, 10.0))
        d.elbow(side, flex=d.u(10.0, 70.0))


def kneeling(d: PoseDraft) -> None:
    """On both knees (half) or on the other knee with the lead foot planted in front."""
    d.lean(pitch=d.u(-5.0, 10.0), roll=d.normal(0.0, 2.0))
    _relaxed_upper_body(d)
    one_knee = d.chance(0.5)
    # A kneeling leg: thigh about vertical, shank on the floor behind, and the foot either upright
    # on tucked toes (its pitch from flat about 90) or stretched back on its instep.
    tucked = d.chance(0.5)
    kneel = {
        "thigh": d.u(-15.0, 10.0),
        "shank": d.u(-95.0, -82.0),
        "foot": np.where(tucked, d.u(80.0, 100.0), d.u(130.0, 145.0)),
        "toes": np.where(tucked, d.u(25.0, 45.0), 0.0),
    }
    d.leg_sagittal(OTHER, **kneel)
    d.leg_sagittal(
        LEAD,
        thigh=np.where(one_knee, d.u(70.0, 95.0), kneel["thigh"] + d.normal(0.0, 3.0)),
        shank=np.where(one_knee, d.u(-10.0, 15.0), kneel["shank"] + d.normal(0.0, 3.0)),
        foot=np.where(one_knee, 0.0, kneel["foot"]),
        toes=np.where(one_knee, 0.0, kneel["toes"]),
        abduction=d.u(0.0, 10.0),
    )
    for side in SIDES:
        _idle_arm(d, side)
    # With a knee up in front, the lead hand often rests on it.
    on_knee = one_knee & d.chance(0.5)
    d.arm_swing(LEAD, forward=d.u(20.0, 40.0), lateral=d.u(5.0, 15.0), where=on_knee)
    d.elbow(LEAD, flex=d.u(30.0, 60.0), where=on_knee)


def reaching(d: PoseDraft) -> None:
    """Reaching out with the lead arm (up, forward, sideways or across), sometimes both arms."""
    d.lean(pitch=d.normal(2.0, 4.0), roll=d.normal(0.0, 2.0))
    _relaxed_upper_body(d)
    _standing_legs(d)
    step = d.chance(0.3)
    d.leg(
        LEAD,
        flex=np.where(step, d.u(10.0, 30.0), d.normal(2.0, 3.0)),
        knee=np.where(step, d.u(5, 25), d.u(0, 6)),
    )
    elevation, azimuth = d.u(60.0, 170.0), d.u(-10.0, 120.0)
    d.arm(LEAD, elevation=elevation, azimuth=azimuth, external=d.u(-30.0, 40.0))
    d.elbow(LEAD, flex=d.u(0.0, 30.0))
    d.collar(LEAD, elevation=np.clip((elevation - 90.0) * 0.25, 0.0, 20.0), protraction=d.u(0.0, 15.0))
    # Reaching up stretches the trunk back and towards the arm; reaching low bends it forward.
    d.torso(
        flex=np.where(elevation > 120.0, d.u(-10.0, 5.0), d.u(0.0, 25.0)),
        bend=np.where(azimuth < 40.0, d.u(-5.0, 12.0), d.normal(0.0, 4.0)),
        twist=np.where(azimuth > 90.0, d.u(0.0, 25.0), d.normal(0.0, 6.0)),
    )
    _idle_arm(d, OTHER)
    both = d.chance(0.3)
    # Both hands to one target: the other arm's azimuth is the lead's seen from the other side.
    d.arm(
        OTHER,
        elevation=elevation + d.normal(0, 10),
        azimuth=np.minimum(180.0 - azimuth, 120.0) + d.normal(0, 10),
        where=both,
    )
    d.elbow(OTHER, flex=d.u(0.0, 30.0), where=both)


def waving(d: PoseDraft) -> None:
    """The lead arm raised to the side, elbow bent, forearm up; the other arm relaxed."""
    d.lean(pitch=d.normal(0.0, 3.0), roll=d.normal(0.0, 2.0))
    _relaxed_upper_body(d)
    _standing_legs(d)
    d.arm(LEAD, elevation=d.u(75.0, 140.0), azimuth=d.u(-10.0, 50.0), external=d.u(55.0, 95.0))
    d.elbow(LEAD, flex=d.u(40.0, 110.0))
    d.wrist(LEAD, flex=d.normal(-10.0, 15.0), deviation=d.normal(0.0, 10.0))
    d.collar(LEAD, elevation=d.u(0.0, 15.0))
    d.head(twist=d.normal(10.0, 15.0), flex=d.normal(0.0, 8.0))
    _idle_arm(d, OTHER)


def jumping(d: PoseDraft) -> None:
    """In the air: a tucked take-off with the arms swung up (half) or a star jump."""
    star = d.chance(0.5)
    d.lean(pitch=np.where(star, d.normal(0.0, 3.0), d.u(0.0, 15.0)), roll=d.normal(0.0, 2.0))
    _relaxed_upper_body(d)
    # Both arms swing together: one shared direction, a little variation per arm.
    elevation = np.where(star, d.u(110.0, 160.0), d.u(90.0, 170.0))
    azimuth = np.where(star, d.u(-10.0, 20.0), d.u(40.0, 100.0))
    for side in SIDES:
        d.leg(
            side,
            flex=np.where(star, d.u(0.0, 10.0), d.u(20.0, 70.0)),
            knee=np.where(star, d.u(0.0, 15.0), d.u(30.0, 100.0)),
            abduction=np.where(star, d.u(20.0, 40.0), d.u(0.0, 12.0)),
            internal=d.u(-10.0, 5.0),
            plantar=d.u(20.0, 45.0),
        )
        d.arm(
            side,
            elevation=elevation + d.normal(0.0, 8.0),
            azimuth=azimuth + d.normal(0.0, 8.0),
            external=d.u(-10.0, 30.0),
        )
        d.elbow(side, flex=d.u(0.0, 40.0))
        d.collar(side, elevation=d.u(0.0, 20.0))


def lying(d: PoseDraft) -> None:
    """Horizontal: on the back (half), the front or the lead side, limbs spread out or drawn up."""
    kind = d.rng.choice(3, size=d.count, p=(0.5, 0.25, 0.25))  # 0 back, 1 front, 2 side
    supine, prone = axis_rotation("x", -90.0), axis_rotation("x", 90.0)
    # On the right (lead) side: the body's left (+x) points up.
    on_side = axis_rotation("z", 90.0)
    d.base = np.select(
        [kind[:, None, None] == 0, kind[:, None, None] == 1], [supine, prone], on_side
    ) @ axis_rotation("y", d.normal(0.0, 5.0))
    d.lean(pitch=d.normal(0.0, 3.0), roll=d.normal(0.0, 3.0))
    _relaxed_upper_body(d)
    d.head(
        flex=np.where(kind == 0, d.u(0.0, 25.0), d.u(-20.0, 10.0)), twist=np.where(kind == 1, d.u(-60, 60), 0)
    )
    on_side = kind == 2
    knee_up = d.chance(0.4)
    for side in SIDES:
        # On the back a knee may be drawn up with the foot on the floor; on the side both legs bend
        # and the upper one rests on the lower one (no abduction).
        flex = np.select([on_side, knee_up], [d.u(20.0, 70.0), d.u(30.0, 60.0)], d.u(-5.0, 10.0))
        knee = np.select([on_side, knee_up], [d.u(30.0, 90.0), 2.0 * flex - d.u(0.0, 10.0)], d.u(0.0, 10.0))
        d.leg(
            side,
            flex=flex,
            knee=knee,
            abduction=np.where(on_side, d.u(0.0, 5.0), d.u(0.0, 20.0)),
            internal=np.where(on_side, d.u(-5.0, 5.0), d.u(-15.0, 10.0)),
            plantar=np.where(kind == 1, d.u(35.0, 55.0), d.u(0.0, 40.0)),  # on the front, toes off the floor
        )
        # Arms along the body, spread on the floor or overhead. On the front they may neither swing
        # forward (into the floor) nor bend much. On the side the lower arm lies in front or under
        # the head, the upper one along the body or in front, both on the floor.
        choice = d.rng.choice(3, size=d.count, p=(0.5, 0.25, 0.25))
        elevation = np.select(
            [choice == 0, choice == 1], [d.u(10.0, 30.0), d.u(40.0, 100.0)], d.u(140.0, 175.0)
        )
        if side == LEAD:  # the lower arm, on the floor: straight forward, not down into it
            side_elevation = np.where(choice == 2, d.u(140.0, 170.0), d.u(60.0, 100.0))
            side_azimuth = d.u(88.0, 100.0)
        else:
            side_elevation = np.where(choice == 0, d.u(5.0, 25.0), d.u(50.0, 90.0))
            side_azimuth = d.u(75.0, 95.0)
        azimuth = np.select([kind == 0, kind == 1], [d.u(-5.0, 25.0), d.u(-15.0, 0.0)], side_azimuth)
        d.arm(
            side,
            elevation=np.where(on_side, side_elevation, elevation),
            azimuth=azimuth,
            external=d.u(-20, 30),
        )
        d.elbow(side, flex=np.where(kind == 1, d.u(0.0, 15.0), d.u(0.0, 25.0)))
        # On the back, a hand may rest on the belly instead.
        belly = (kind == 0) & (choice == 0) & d.chance(0.5)
        d.arm_swing(
            side, forward=d.u(10.0, 30.0), lateral=d.u(8.0, 15.0), external=d.u(-75.0, -50.0), where=belly
        )
        d.elbow(side, flex=d.u(75.0, 100.0), where=belly)


def bending(d: PoseDraft) -> None:
    """Bending forward from the hips to pick something up, knees straight or a little bent."""
    d.lean(pitch=d.u(35.0, 80.0), roll=d.normal(0.0, 3.0))
    _relaxed_upper_body(d)
    spine = d.u(10.0, 35.0)
    d.torso(flex=spine, twist=d.normal(0.0, 6.0))
    d.head(flex=d.u(-35.0, 0.0))
    for side in SIDES:
        d.leg_sagittal(side, thigh=d.u(-5.0, 15.0), shank=d.u(-20.0, 0.0), abduction=d.u(0.0, 10.0))
        # The arms hang towards the floor: forward of the trunk by about its lean.
        d.arm_swing(side, forward=d.pitch + spine + d.normal(-10.0, 12.0), lateral=d.u(5.0, 20.0))
        d.elbow(side, flex=d.u(0.0, 40.0))


FamilySampler = Callable[[PoseDraft], None]

# Every family by name, in the order the sampler draws them (part of its determinism).
FAMILIES: Final[dict[str, FamilySampler]] = {
    "standing": standing,
    "walking": walking,
    "running": running,
    "sitting": sitting,
    "sitting_floor": sitting_floor,
    "crouching": crouching,
    "kneeling": kneeling,
    "reaching": reaching,
    "waving": waving,
    "jumping": jumping,
    "lying": lying,
    "bending": bending,
}
FAMILY_NAMES: Final[tuple[str, ...]] = tuple(FAMILIES)

DEFAULT_FAMILY_WEIGHTS: Final[dict[str, float]] = {
    "standing": 0.14,
    "walking": 0.14,
    "running": 0.07,
    "sitting": 0.11,
    "sitting_floor": 0.05,
    "crouching": 0.08,
    "kneeling": 0.06,
    "reaching": 0.10,
    "waving": 0.06,
    "jumping": 0.05,
    "lying": 0.07,
    "bending": 0.07,
}
