"""The ground floor: decode and resize, the backbones, every metric, the split arrays,
paths, atomic writes."""
