"""Dependency order by Kahn's algorithm, for anything with predecessors: the ops of a plan, the
nodes of a GraphDef."""

import heapq


class CycleError(ValueError):
    """Some items depend on themselves. `unordered` holds every item that could not be ordered
    (those on a cycle and those after one), sorted by key."""

    def __init__(self, unordered):
        self.unordered = unordered
        super().__init__(f"a cycle among {len(unordered)} items, first {unordered[:5]}")


def kahn_order(items, predecessors, key):
    """`items` ordered so each comes after its predecessors; of the items ready at once, the one
    with the smallest `key(item)` comes first, so the order is deterministic.

    `predecessors(item)` yields items; those not in `items` are ignored and repeats count once.
    Raises `CycleError` when no such order exists.
    """
    items = list(items)
    members = set(items)
    if len(members) != len(items):
        raise ValueError("kahn_order needs distinct items")
    indegree = {}
    consumers = {item: [] for item in items}
    for item in items:
        preds = {p for p in predecessors(item) if p in members}
        indegree[item] = len(preds)
        for p in preds:
            consumers[p].append(item)
    # The position breaks ties between equal keys without comparing the items themselves.
    ready = [(key(item), i, item) for i, item in enumerate(items) if indegree[item] == 0]
    position = {item: i for i, item in enumerate(items)}
    heapq.heapify(ready)
    order = []
    while ready:
        _, _, item = heapq.heappop(ready)
        order.append(item)
        for c in consumers[item]:
            indegree[c] -= 1
            if indegree[c] == 0:
                heapq.heappush(ready, (key(c), position[c], c))
    if len(order) != len(items):
        raise CycleError(sorted((item for item in items if indegree[item] > 0), key=key))
    return order
