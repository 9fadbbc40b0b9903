"""Config groups of the encoding model (model/core, model/readout), on the search path of ``egg train`` only."""
