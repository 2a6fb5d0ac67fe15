"""The methods on backbone features: the embed stage's arrays, pooled views, new posters
through the backbones."""
