"""Host-side data, simulation, training and evaluation for hotspot-edge."""
