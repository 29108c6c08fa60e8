"""Students in tables and figures: their sort order and how a title names one.

A student is an id, `<architecture>-<size name><size>` (igkd.registry): mobilenetv2-drop5,
resnet-depth8. Tables sort students as the registry does (its architectures in order,
then by size: mobilenetv2-drop3 before mobilenetv2-drop11, which text order would
reverse). The analysis jobs do not load the config's plugins, so an id of a plugin's
family is not in the registry there: such ids sort after igkd's own, by family name and
size, and anything that is no id at all (the timing table's "teacher") last, by its text.
Torch-free.
"""

from __future__ import annotations

from collections.abc import Iterable

from igkd import registry


def student_key(student) -> tuple[int, int, str, int]:
    """Sort key of a student id: registered families in registry order, then by size;
    unregistered (plugin) families after, by name and size; non-ids last, by text."""
    text = str(student)
    try:
        index, size = registry.student_order(text)
        return (0, index, "", size)
    except ValueError:
        pass
    match = registry.STUDENT_ID.match(text)
    if match:
        return (1, 0, match["arch"], int(match["size"]))
    return (2, 0, text, 0)


def sort_students(students: Iterable) -> list:
    """The distinct students, in `student_key` order."""
    return sorted(dict.fromkeys(students), key=student_key)


def student_ranks(students: Iterable) -> dict:
    """{student: its position in `sort_students`}: a rank map for sorting table rows."""
    return {s: i for i, s in enumerate(sort_students(students))}


def student_label(student, factor: float | None = None) -> str:
    """How titles name a student: 'mobilenetv2-drop5 (4.12x)' with its compression factor."""
    if factor is None or factor != factor:  # None or NaN
        return str(student)
    return f"{student} ({float(factor):.2f}x)"
