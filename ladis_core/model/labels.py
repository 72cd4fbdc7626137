"""How an attack's strength reads, the same way in the demo, the dashboard and reports."""

from __future__ import annotations

#: ε within this many grey levels of a whole number is shown as that number of levels
GREY_LEVEL_TOLERANCE = 1e-3


def epsilon_label(epsilon: float) -> str:
    """``"8/255"`` when ε is a whole number of grey levels (how attacks are usually set),
    else the number (``"0.0314"``).

    Examples:
        >>> epsilon_label(8 / 255), epsilon_label(0.0314)
        ('8/255', '0.0314')
    """
    levels = float(epsilon) * 255
    if abs(levels - round(levels)) < GREY_LEVEL_TOLERANCE:
        return f"{round(levels)}/255"
    return f"{float(epsilon):.4g}"
