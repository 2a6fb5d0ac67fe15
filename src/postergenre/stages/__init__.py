"""The data stages' entry points, one module each (`python -m postergenre.stages.<stage>`), so
that each DVC stage depends on exactly the code its own stage runs."""
