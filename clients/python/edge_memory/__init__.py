"""Persistent LangGraph checkpoints, long-term memory (a LangGraph store) and LangChain
chat histories, stored at the edge."""

from edge_memory._http import EdgeMemoryError
from edge_memory.history import EdgeMemoryChatMessageHistory
from edge_memory.saver import EdgeMemorySaver
from edge_memory.store import EdgeMemoryStore, user_root

__all__ = ["EdgeMemoryChatMessageHistory", "EdgeMemoryError", "EdgeMemorySaver", "EdgeMemoryStore", "user_root"]
