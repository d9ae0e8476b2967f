"""Plots a bench result: turn cost and storage vs thread length, ours beside LangGraph's."""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def rolling_mean(values, window=25):
    """Means over a sliding window: the worker's clock ticks in whole milliseconds."""
    out = []
    for i in range(len(values)):
        chunk = values[max(0, i - window + 1): i + 1]
        out.append(sum(chunk) / len(chunk))
    return out


def main(src: str, dst: str) -> None:
    r = json.load(open(src))
    ours, theirs = r["ours"], r["langgraph"]
    fig, (cost, size) = plt.subplots(1, 2, figsize=(12, 4.5))
    turns = range(1, len(ours["workerMsPerTurn"]) + 1)
    cost.plot(turns, rolling_mean(ours["workerMsPerTurn"]), label="edge-memory: worker ms per turn (DO)")
    cost.plot(turns, rolling_mean(theirs["turnMs"]), label="LangGraph SqliteSaver: invoke ms per turn")
    cost.set_xlabel("turn")
    cost.set_ylabel("ms (rolling mean of 25 turns)")
    cost.set_yscale("log")
    cost.set_title("Turn cost vs thread length")
    cost.legend()
    curve = sorted(ours["storageCurve"])
    size.plot([t for t, _, _ in curve], [b / 1e6 for _, b, _ in curve], label="edge-memory: logical bytes")
    size.plot([t for t, _, _ in curve], [d / 1e6 for _, _, d in curve], label="edge-memory: database size")
    at = sorted((int(t), b) for t, b in theirs["bytesAt"].items())
    size.plot([t for t, _ in at], [b / 1e6 for _, b in at], label="LangGraph SqliteSaver: checkpoint bytes")
    size.set_xlabel("turn")
    size.set_ylabel("MB stored")
    size.set_yscale("log")
    size.set_title("Storage vs thread length")
    size.legend()
    fig.tight_layout()
    fig.savefig(dst, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
