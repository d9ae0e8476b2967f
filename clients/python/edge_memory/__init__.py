"""Persistent LangGraph checkpoints and LangChain chat histories, stored at the edge."""

from edge_memory._http import EdgeMemoryError
from edge_memory.history import EdgeMemoryChatMessageHistory
from edge_memory.saver import EdgeMemorySaver

__all__ = ["EdgeMemoryChatMessageHistory", "EdgeMemoryError", "EdgeMemorySaver"]
