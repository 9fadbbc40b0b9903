"""In-silico ground-truth neurons: V4-like two-stage models, simulation and reloading."""

from egg_cli.simulation.ground_truth import load_ground_truth
from egg_cli.simulation.neurons import GaborBank, V4Population
from egg_cli.simulation.simulate import Simulation, SimulationConfig, simulate, write_simulation

__all__ = ["load_ground_truth", "GaborBank", "V4Population", "Simulation", "SimulationConfig", "simulate", "write_simulation"]
