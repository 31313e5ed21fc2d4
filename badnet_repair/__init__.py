"""badnet-repair: a DVC workflow that repairs backdoored networks by pruning (Fine-Pruning)."""

__version__ = "0.1.0"
