"""autoops: the operations toolkit of the AutoOps Langfuse integration."""

__version__ = "0.1.0"
