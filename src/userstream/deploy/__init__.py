"""Containers: the host's container engine, the images, and the compose cluster."""
