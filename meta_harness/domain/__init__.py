"""Domain layer: the pure, synchronous rules (phases, delivery, drops, permissions, admission)."""
