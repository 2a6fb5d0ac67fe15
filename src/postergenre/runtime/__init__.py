"""Run-only plumbing, in no stage's deps: how a command starts, MLflow tracking, logging the pyfunc model."""
