"""Fisher information approximations."""
