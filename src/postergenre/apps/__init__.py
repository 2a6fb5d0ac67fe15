"""What users run that no stage runs: the command line, predict, explain, the page,
compare, the MLflow UI and model, the remote check."""
