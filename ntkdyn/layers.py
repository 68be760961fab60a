"""The layers of serial networks: ``ntkdyn.layers.Conv``, ``Dense``, ``Residual``, ...

Re-exported from :mod:`ntkdyn.base.layers` (pure, validated descriptions that the theory and the
numerics both read)::

    from ntkdyn.layers import Activation, Conv, Dense, GlobalAvgPool
    net = ntkdyn.Network.serial(Conv(16, 3), Activation("relu"), GlobalAvgPool(), Dense(10),
                                input_shape=(8, 8, 1))
"""
from .base.layers import Activation, AvgPool, Conv, Dense, Flatten, GlobalAvgPool, Layer, Residual

__all__ = ["Activation", "AvgPool", "Conv", "Dense", "Flatten", "GlobalAvgPool", "Layer",
           "Residual"]
