"""The torch networks' shared code: the one training loop and what every network on pixels shares."""
