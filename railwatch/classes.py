"""The kinds of rolling stock railwatch counts: one vocabulary for the pipeline, the simulator and training.

:class:`CarClass` is a :class:`~enum.StrEnum`, so a member is its own name in files
(``"covered_car"``) and compares equal to it; :attr:`CarClass.class_id` is its position in model
outputs and YOLO labels.
"""

from __future__ import annotations

import enum

__all__ = ["CLASSES", "CLASS_NAMES", "CarClass"]


class CarClass(enum.StrEnum):
    """Rolling-stock classes, declared in the index order used by labels and models."""

    COVERED_CAR = "covered_car"
    OPEN_CAR = "open_car"
    TANK_CAR = "tank_car"
    FLAT_CAR = "flat_car"
    LOCOMOTIVE = "locomotive"

    @property
    def class_id(self) -> int:
        """Position of the class in model outputs and label files."""
        return CLASSES.index(self)

    @property
    def label(self) -> str:
        """The class name as written in files (the plain ``str``)."""
        return str(self.value)

    @classmethod
    def from_index(cls, index: int) -> CarClass:
        """The class at ``index`` of model outputs and label files."""
        if not 0 <= index < len(CLASSES):
            raise ValueError(f"class index {index} is not in 0..{len(CLASSES) - 1}")
        return CLASSES[index]

    @classmethod
    def from_label(cls, name: str) -> CarClass:
        """The class named ``name``; a ValueError that lists the names otherwise."""
        try:
            return cls(name)
        except ValueError:
            raise ValueError(f"unknown car class {name!r}; use one of {', '.join(CLASS_NAMES)}") from None


#: Every class, in index order.
CLASSES: tuple[CarClass, ...] = tuple(CarClass)

#: Every class name as a plain ``str``, in index order (for YAML, JSON and CSV writers).
CLASS_NAMES: tuple[str, ...] = tuple(c.value for c in CLASSES)
