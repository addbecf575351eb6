"""Diagrams of machines and schemas: Mermaid state diagrams and Graphviz DOT.

```python
from asyncmachine import visualizer

print(visualizer.mermaid(mach))  # or a schema, e.g. visualizer.dot(SCHEMA)
```

Relations are drawn as labelled edges, Auto and Multi states are marked and
a machine's active states are highlighted. The `am-vis` command writes the
same from a schema in a module (``am-vis pkg.states:SCHEMA``).
"""

from __future__ import annotations

from ._cli import main as main
from ._render import RELATIONS as RELATIONS
from ._render import Diagram as Diagram
from ._render import Relation as Relation
from ._render import diagram as diagram
from ._render import dot as dot
from ._render import mermaid as mermaid

__all__ = ["RELATIONS", "Diagram", "Relation", "diagram", "dot", "main", "mermaid"]
