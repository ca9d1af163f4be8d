"""Quagga: a co-design simulator for low-bit graph neural network accelerators."""

__version__ = "0.1.0"
