"""edge-memory under the ``langgraph.checkpoint`` namespace, as the checkpointer family
names its members (``langgraph.checkpoint.postgres``, ``langgraph.checkpoint.sqlite``).

The same objects as ``edge_memory``: ``from langgraph.checkpoint.edge_memory import
EdgeMemorySaver``.
"""

from edge_memory import EdgeMemoryChatMessageHistory, EdgeMemoryError, EdgeMemorySaver

__all__ = ["EdgeMemoryChatMessageHistory", "EdgeMemoryError", "EdgeMemorySaver"]
