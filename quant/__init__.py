"""Quagga's numerics contract: the integer reference every other implementation must equal.

Import the submodules directly (``quant.spec``, ``quant.reference``, ``quant.pack``,
``quant.aggregate``); this package's ``__init__`` stays empty so that importing the
numpy reference never imports torch.
"""

CONTRACT_VERSION = 1
