"""egg: synthesize images that drive neurons and map network layers to the brain."""

__version__ = "0.1.0"
