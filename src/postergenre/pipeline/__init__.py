"""Every stage of dvc.yaml, one module each: `python -m postergenre.pipeline.<stage>`."""
