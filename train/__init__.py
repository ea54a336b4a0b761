"""Host-side data, simulation, filter design, training and evaluation for hotspot-edge."""
