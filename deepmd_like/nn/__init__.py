"""Neural-network potentials: neighbour lists, descriptors, fitting nets, models."""
